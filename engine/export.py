"""Ship a trained student: the adapter, a merged 16-bit model, or a GGUF for llama.cpp/Ollama.

Every export is written to a fresh hidden folder next to OUT and renamed into place
only when whole, so a failure never leaves a half-written export; OUT itself must be
new, empty or an earlier Stillroom export (engine/export_target.py), so an export
never deletes anything it did not write. A merged (or GGUF) export is
checked for parity: the same prompts, answered greedily by the exported model
and by base + adapter; any difference is reported and flags the export.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.export_target import (
    check_export_target,
    clear_stopped,
    drop_partial,
    new_partial,
    place_export,
    write_marker,
)
from engine.fileio import atomic_write_text
from engine.i18n import N_, _
from engine.plan import Plan
from engine.run_dir import RunDir

FORMATS = ("adapter", "merged", "gguf")
PARITY_PROMPTS = 3
PARITY_TOKENS = 48
GGUF_TYPES = ("f16", "bf16", "q8_0")
_CONVERTER = "convert_hf_to_gguf.py"
# What an installed llama.cpp puts on PATH: the script, or its pip entry point.
_INSTALLED = (_CONVERTER, "llama-convert-hf-to-gguf")
_INSTALL_GGUF = N_(
    "GGUF needs llama.cpp's converter: `git clone https://github.com/ggml-org/llama.cpp` and "
    "`pip install -r llama.cpp/requirements/requirements-convert_hf_to_gguf.txt`, then name it: "
    "--llama-cpp /path/to/llama.cpp or LLAMA_CPP_DIR=/path/to/llama.cpp (or put "
    "convert_hf_to_gguf.py on PATH). "
    "`--format merged` works without it."
)


@dataclass
class Parity:
    """Greedy answers of base + adapter and of the export, prompt by prompt."""

    prompts: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    exported: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def differing(self) -> int:
        return sum(a != b for a, b in zip(self.expected, self.exported, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "differing": self.differing,
            "note": self.note,
            "items": [
                {"prompt": p, "base_plus_adapter": a, "exported": b, "same": a == b}
                for p, a, b in zip(self.prompts, self.expected, self.exported, strict=True)
            ],
        }


@dataclass
class ExportResult:
    path: Path
    format: str
    parity: Parity | None = None
    uploaded_to: str = ""
    cleared: list[tuple[Path, int]] = field(default_factory=list)  # a killed export's leftovers

    @property
    def flagged(self) -> bool:
        return bool(self.parity and self.parity.differing)


def cleared_lines(result: ExportResult) -> list[str]:
    """What the export removed before it began: folders a killed export had left."""
    lines = []
    for folder, size in result.cleared:
        amount = f"{size / 2**30:.1f} GB" if size >= 2**30 else f"{size / 2**20:.1f} MB"
        line = _("removed {folder} ({amount}), left by an export that was stopped").format(
            folder=folder, amount=amount
        )
        lines.append(line)
    return lines


def export(
    run_dir: str | Path,
    format: str,
    out: str | Path | None = None,
    *,
    gguf_type: str = "f16",
    push_to_hub: str = "",
    force: bool = False,
    converter: Converter | None = None,
) -> ExportResult:
    """Export the run's student as ``format`` into ``out`` (default ``RUN/export/FORMAT``).

    ``out`` is checked first (:func:`check_export_target`) and again before the
    finished export is moved in; ``converter`` defaults to the one the user named.
    """
    run = RunDir(run_dir)
    run_dir = run.path
    if format not in FORMATS:
        raise UserError(
            _("unknown export format {format!r}").format(format=format),
            hint=_("one of {FORMATS}").format(FORMATS=", ".join(FORMATS)),
        )
    adapter = run.adapter
    if adapter is None:
        raise UserError(
            _("{name} has no adapter to export").format(name=run_dir.name),
            hint=_("`stillroom runs`"),
        )
    final = check_export_target(out, format, run_dir, force=force)
    token = hub_token() if push_to_hub else ""
    if format == "gguf" and converter is None:
        converter = find_gguf_converter()
    if gguf_type not in GGUF_TYPES:
        raise UserError(
            _("unknown GGUF type {gguf_type!r}").format(gguf_type=gguf_type),
            hint=_("one of {GGUF_TYPES}").format(GGUF_TYPES=", ".join(GGUF_TYPES)),
        )
    from engine.hub import student_on_disk

    plan = student_on_disk(run.plan())  # a ModelScope student: its folder
    cleared = clear_stopped(final)
    partial = new_partial(final)
    try:
        result = ExportResult(final, format, cleared=cleared)
        if format == "adapter":
            shutil.copytree(adapter, partial, dirs_exist_ok=True)
        else:
            merged = partial if format == "merged" else partial / "merged-hf"
            expected = merge(plan, adapter, merged)
            if format == "merged":
                result.parity = parity_merged(merged, expected)
            else:
                assert converter is not None
                gguf = convert_to_gguf(converter, merged, partial, plan.output.name, gguf_type)
                result.parity = parity_gguf(gguf, merged, expected)
                atomic_write_text(
                    partial / "Modelfile", ollama_modelfile(_tokenizer(merged), gguf.name)
                )
                shutil.rmtree(merged)
        if result.parity:
            atomic_write_text(
                partial / "parity.json", json.dumps(result.parity.to_dict(), indent=2)
            )
        atomic_write_text(partial / "README.md", model_card(plan, run_dir, format, result.parity))
        write_marker(partial, format, run_dir)
        place_export(partial, check_export_target(out, format, run_dir, force=force))
    except BaseException:
        drop_partial(partial)
        raise
    if push_to_hub:
        result.uploaded_to = upload(final, push_to_hub, token)
    return result


def merge(plan: Plan, adapter: Path, out: Path) -> dict[str, str]:
    """Fold the adapter into a 16-bit base and save safetensors; returns parity answers.

    The base is reloaded in its own (16-bit) dtype even when training used 4-bit:
    merging into quantised weights would round the LoRA update away. On CUDA with
    Unsloth, its ``save_pretrained_merged`` does the same dequantise-and-merge.
    """
    from engine.chat import load_student

    student = load_student(adapter.parent)
    prompts = parity_prompts(adapter.parent)
    expected = {p: _greedy(student, p) for p in prompts}
    if student.backend == "unsloth":
        student.model.save_pretrained_merged(
            str(out), student.tokenizer, save_method="merged_16bit"
        )
        return expected
    del student
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(plan.student.model, dtype="auto")
    if base.dtype == torch.float32 and torch.cuda.is_available():
        base = base.to(torch.bfloat16)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out), safe_serialization=True)
    _tokenizer(adapter).save_pretrained(str(out))
    return expected


def parity_prompts(run_dir: Path, count: int = PARITY_PROMPTS) -> list[str]:
    """A few held-out prompts (or dataset prompts): questions the student has an answer to."""
    from engine.evaluate import eval_set

    return [messages[-1]["content"] for messages, _ in eval_set(run_dir, count).pairs]


def _greedy(student: Any, prompt: str) -> str:
    return student.answer([{"role": "user", "content": prompt}], max_new_tokens=PARITY_TOKENS).text


def parity_merged(folder: Path, expected: dict[str, str]) -> Parity:
    """The merged folder loaded with plain transformers (no PEFT), answering the same prompts."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.chat import Student
    from engine.plan import Plan

    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(
        str(folder), dtype="auto" if cuda else torch.float32
    )
    student = Student(
        model.to("cuda") if cuda else model.eval(),
        _tokenizer(folder),
        Plan(),
        has_adapter=False,
        backend="hf",
    )
    return Parity(list(expected), list(expected.values()), [_greedy(student, p) for p in expected])


@dataclass(frozen=True)
class Converter:
    """llama.cpp's HF-to-GGUF converter the user named, and how it was named."""

    command: tuple[str, ...]
    named_by: str

    def __str__(self) -> str:
        return f"{self.command[-1]} (from {self.named_by})"


def find_gguf_converter(llama_cpp: str | None = None) -> Converter:
    """The converter in ``--llama-cpp DIR``, else in $LLAMA_CPP_DIR, else llama.cpp's on PATH.

    Never one merely lying around (``./llama.cpp`` in the working folder could be
    anyone's script): such a copy is only mentioned in the hint.
    """
    for folder, named_by in (
        (llama_cpp, "--llama-cpp"),
        (os.environ.get("LLAMA_CPP_DIR"), "LLAMA_CPP_DIR"),
    ):
        if not folder:
            continue
        script = Path(folder).expanduser() / _CONVERTER
        if not script.is_file():
            raise UserError(
                _("{named_by} names {folder}, which has no {CONVERTER}").format(
                    named_by=named_by, folder=folder, CONVERTER=_CONVERTER
                ),
                hint=_(_INSTALL_GGUF),
            )
        return Converter((sys.executable, str(script.resolve())), named_by)
    search = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if os.path.isabs(p)
    )
    for name in _INSTALLED:
        found = shutil.which(name, path=search)
        if found:
            command = (sys.executable, found) if found.endswith(".py") else (found,)
            return Converter(command, "PATH")
    raise UserError(_("no GGUF converter found"), hint=_(_INSTALL_GGUF) + _unnamed_copies())


def _unnamed_copies() -> str:
    """Copies Stillroom saw but will not run unless named, said so the user can name one."""
    places = [Path("llama.cpp"), Path("~/.unsloth/llama.cpp").expanduser()]
    found = next((p for p in places if (p / _CONVERTER).is_file()), None)
    if found is None:
        return ""
    return " " + _(
        "({script} was not run: Stillroom runs only a converter you name; to trust that one, "
        "add --llama-cpp {folder}.)"
    ).format(script=found / _CONVERTER, folder=found)


def convert_to_gguf(converter: Converter, merged: Path, out: Path, name: str, outtype: str) -> Path:
    target = out / f"{name}-{outtype}.gguf"
    done = subprocess.run(
        [*converter.command, str(merged), "--outfile", str(target), "--outtype", outtype],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not target.is_file():
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-5:])
        raise UserError(
            _("llama.cpp's converter ({converter}) failed: {tail}").format(
                converter=converter, tail=tail
            ),
            hint=_(
                "A missing module: install the converter's requirements "
                "(llama.cpp/requirements/requirements-convert_hf_to_gguf.txt). 'not recognized' or "
                "'not supported': this llama.cpp is older than the model; update it (`git -C "
                "LLAMA_CPP_DIR pull`). `--format merged` works without it."
            ),
        )
    return target


def parity_gguf(gguf: Path, merged: Path, expected: dict[str, str]) -> Parity:
    """GGUF answers through llama-cpp-python when it is installed; otherwise say so."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return Parity(note="not checked: `pip install llama-cpp-python` to compare the GGUF")
    llm = Llama(model_path=str(gguf), n_ctx=2048, verbose=False)
    tokenizer = _tokenizer(merged)
    answers = []
    for prompt in expected:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        out = llm(text, max_tokens=PARITY_TOKENS, temperature=0.0, stop=[_end_of_turn(tokenizer)])
        answers.append(out["choices"][0]["text"].strip())
    return Parity(list(expected), [a.strip() for a in expected.values()], answers)


def _tokenizer(folder: Path) -> Any:
    from engine.data.render import load_tokenizer

    return load_tokenizer(str(folder))


def _end_of_turn(tokenizer: Any) -> str:
    from engine.data.render import inspect_chat_template

    return inspect_chat_template(tokenizer).end_of_turn


_SYS, _USER, _ANSWER = "\x00SYS\x00", "\x00USER\x00", "\x00ANSWER\x00"


def ollama_modelfile(tokenizer: Any, gguf_name: str) -> str:
    """An Ollama Modelfile whose TEMPLATE and stop token are the student's own chat template.

    Found by rendering probe conversations and replacing the probes with Ollama's Go
    template fields, so the served prompt is byte-for-byte the one the student trained on;
    a template that adds a default system prompt gets it as ``SYSTEM``.
    """

    def render(messages: list[dict[str, str]], prompt: bool) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)

    user = {"role": "user", "content": _USER}
    head = render([{"role": "system", "content": _SYS}], False)
    with_system = render([{"role": "system", "content": _SYS}, user], True)
    if not with_system.startswith(head):
        raise UserError(_("the chat template renders a system prompt in a way Ollama cannot copy"))
    turn = with_system[len(head) :]
    plain = render([user], True)
    full = render([user, {"role": "assistant", "content": _ANSWER}], False)
    tail = full[full.index(_ANSWER) + len(_ANSWER) :]
    before, after = head.split(_SYS)
    default_head = plain[: len(plain) - len(turn)] if plain.endswith(turn) else ""
    default_system = (
        default_head[len(before) : len(default_head) - len(after)]
        if default_head.startswith(before) and default_head.endswith(after)
        else ""
    )
    template = (
        f"{{{{ if .System }}}}{before}{{{{ .System }}}}{after}{{{{ end }}}}"
        + turn.replace(_USER, "{{ .Prompt }}")
        + "{{ .Response }}"
        + tail
    )
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    if default_system:
        lines.append(f'SYSTEM """{default_system}"""')
    lines.append(f'PARAMETER stop "{_end_of_turn(tokenizer)}"')
    return "\n".join(lines) + "\n"


def model_card(plan: Plan, run_dir: Path, format: str, parity: Parity | None) -> str:
    """README.md for the export: base model, training settings, data size, eval metrics."""
    summary = _read_json(run_dir / "summary.json")
    report = _read_json(RunDir(run_dir).eval_dir / "report.json")
    s, lora, t = plan.student, plan.lora, plan.training
    lines = [
        "---",
        f"base_model: {s.model}",
        *(["library_name: peft"] if format == "adapter" else []),
        "tags: [stillroom, distillation, lora]",
        "---",
        "",
        f"# {plan.output.name}",
        "",
        f"A {s.model} student distilled with Stillroom from "
        f"{plan.teacher.model or 'a teacher'} ({plan.teacher.provider}) answers; "
        f"exported as **{format}**.",
        "",
        "## Training",
        "",
        f"- data: {plan.dataset.source} ({_data_size(run_dir, summary)})",
        f"- LoRA r={lora.r}, alpha={lora.alpha}, dropout={lora.dropout}, on {', '.join(lora.target_modules)}",
        f"- {summary.get('steps', '?')} steps, batch {t.batch_size} x grad-accum {t.grad_accum}, "
        f"lr {t.learning_rate}, {summary.get('backend', '?')} backend; final loss "
        f"{summary.get('train_loss', '?')}",
    ]
    if format != "adapter":
        lines.append(
            "- merged into the unquantised base in its own dtype (16-bit for hub models; "
            f"reloaded so even when training used 4-bit: load_in_4bit={s.load_in_4bit})"
        )
    if report:
        from engine.evaluate import metric_lines

        lines += ["", "## Evaluation", "", "| metric | base | student |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in metric_lines(report)]
    if parity:
        verdict = parity.note or (
            f"**{parity.differing} of {len(parity.prompts)} answers differ from base + adapter**"
            if parity.differing
            else f"same greedy answers as base + adapter on {len(parity.prompts)} prompts"
        )
        lines += ["", "## Parity", "", verdict + " (parity.json)."]
    return "\n".join(lines) + "\n"


def _data_size(run_dir: Path, summary: dict[str, Any]) -> str:
    from engine.train.dataset import load_eval_split

    held = load_eval_split(run_dir)
    tokens = summary.get("tokens_trained")
    parts = [
        f"{tokens:,} tokens trained" if tokens else "",
        f"{len(held)} rows held out" if held else "",
    ]
    return ", ".join(p for p in parts if p) or "size not recorded"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def hub_token() -> str:
    """HF_TOKEN from the environment; checked before any export work starts."""
    token = os.environ.get("HF_TOKEN", "").strip()
    if not token:
        raise UserError(
            _("--push-to-hub needs HF_TOKEN in the environment"),
            hint=_(
                "Create a write token at https://huggingface.co/settings/tokens and `export "
                "HF_TOKEN=...`; Stillroom never stores it."
            ),
        )
    return token


def upload(folder: Path, repo: str, token: str) -> str:
    """Upload the export to a private model repository on the Hugging Face Hub."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo, private=True, exist_ok=True, repo_type="model")
    api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model")
    return str(url)
