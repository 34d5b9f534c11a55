"""The plan: everything one distillation run needs, saved as TOML.

The wizard writes it, ``stillroom train`` reads it. Every key has a default
taken from the reference notebook (Qwen2.5-1.5B, 4-bit QLoRA, r=16, 60 steps of
2 x 4), so a plan file names only what it changes. API keys are never part of
a plan: only the name of the environment variable that holds one.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.errors import UserError
from engine.fileio import atomic_write_text
from engine.i18n import N_, _, current_language

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

Provider = Literal[
    "deepseek", "openai", "qwen", "moonshot", "zhipu", "siliconflow", "local", "custom"
]
DatasetFormat = Literal["auto", "alpaca", "sharegpt", "messages", "pair", "text"]
Backend = Literal["auto", "unsloth", "hf"]
Dtype = Literal["auto", "bfloat16", "float16", "float32"]
Overflow = Literal["drop", "truncate"]

KEY_ERROR = "key_like"  # the error type of a value refused as an API key: never shown back

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


_FIX_KEYS = N_("Fix the keys named above; `stillroom plan --defaults` shows every key.")
_START_OVER = N_("Start from `stillroom plan --defaults > plan.toml` and copy your settings over.")


class PlanError(UserError):
    """A plan that cannot be used; ``problems`` holds one readable line per fault."""

    def __init__(self, source: str, problems: list[str], hint: str = ""):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems), hint=hint or _(_FIX_KEYS))

    def __str__(self) -> str:
        lines = [
            _("The plan {source} has {count} problem(s):").format(
                source=self.source, count=len(self.problems)
            )
        ]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TeacherPlan(_Section):
    """The large model that writes the training data, over an OpenAI-compatible API."""

    provider: Provider = Field("deepseek", description=" | ".join(get_args(Provider)))
    model: str = Field("deepseek-v4-flash", description="Model id; list them from the endpoint.")
    base_url: str = Field("https://api.deepseek.com", description="OpenAI-compatible endpoint.")
    api_key_env: str = Field(
        "DEEPSEEK_API_KEY", description="Name of the environment variable holding the key."
    )
    concurrency: int = Field(16, ge=1, le=512, description="Requests in flight at once.")
    system: str = Field("You are a helpful assistant.", description="System prompt for answers.")
    language: Literal["auto", "en", "zh"] = Field(
        "auto",
        description="Language of the default system prompt and the topic questions: auto "
        "follows the prompts (Chinese when they are mostly Chinese), or en | zh.",
    )
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(2048, ge=1, le=131072, description="Answer budget per prompt.")
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout before a retry.")
    max_retries: int = Field(6, ge=0, le=50)
    train_on_reasoning: bool = Field(
        False, description="Train on the teacher's chain of thought as well as its answer."
    )
    budget_usd: float | None = Field(None, gt=0, description="Stop cleanly once spent.")
    price_input_per_mtok: float | None = Field(None, ge=0, description="Overrides the price table.")
    price_output_per_mtok: float | None = Field(None, ge=0)
    prompts: str = Field("", description="Prompt file: text (one a line), JSONL or any dataset.")
    topic: str = Field("", description="Or: the teacher first writes `count` questions on this.")
    count: int = Field(100, ge=1, le=1_000_000, description="Questions to write for `topic`.")
    documents: list[str] = Field(
        default_factory=list,
        description="Or: files and folders (.txt .md .pdf .docx .html) to write questions from.",
    )
    questions_per_chunk: int = Field(
        5, ge=1, le=50, description="Documents: questions the teacher writes on each chunk."
    )
    chunk_tokens: int = Field(
        600, ge=64, le=8192, description="Documents: size of a chunk of text, in tokens."
    )
    limit: int | None = Field(None, ge=1, description="Answer at most this many prompts.")
    output: str = Field("teacher.jsonl", description="Append-only JSONL of finished answers.")
    stream: bool = Field(
        True, description="Stream answers, so long reasoning never trips the read timeout."
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Provider-specific request fields, sent as given."
    )
    dedupe_threshold: float = Field(
        0.8, ge=0.0, le=1.0, description="Drop prompts this similar to an earlier one (0: off)."
    )
    retry_base_s: float = Field(1.0, gt=0, description="First retry delay; doubles each time.")
    retry_max_s: float = Field(60.0, gt=0, description="Longest wait between retries.")

    @model_validator(mode="wrap")
    @classmethod
    def _provider_defaults(cls, data: Any, handler: Any) -> TeacherPlan:
        """The provider's preset fills what the plan leaves out; the plan's own values win.

        ``model_fields_set`` stays what was written, so flags can be layered over
        the plan as written (``engine.teacher.providers.layered``).
        """
        from engine.teacher.providers import with_preset

        if not isinstance(data, dict):
            return handler(data)
        teacher = handler(with_preset(data))
        teacher.model_fields_set.intersection_update(data)
        return teacher

    @field_validator(
        "provider",
        "model",
        "base_url",
        "api_key_env",
        "system",
        "prompts",
        "topic",
        "output",
        "extra_body",
        mode="before",
    )
    @classmethod
    def _no_keys(cls, value: Any, info: ValidationInfo) -> Any:
        """A pasted API key is refused here, so it never reaches a run plan, a log or an event."""
        from engine.teacher.keys import key_in_setting, masked

        if found := key_in_setting(info.field_name or "", value):
            what = (
                _(
                    "looks like an API key ({shown}); a key never goes in a plan or a flag: "
                    "export it in an environment variable and set api_key_env to that "
                    "variable's name (e.g. DEEPSEEK_API_KEY)"
                )
                if found == value
                else _(
                    "holds an API key ({shown}); a key never goes in a plan or a flag: "
                    "export it in an environment variable and set api_key_env to that "
                    "variable's name (e.g. DEEPSEEK_API_KEY)"
                )
            )
            raise PydanticCustomError(KEY_ERROR, what, {"shown": masked(found)})
        return value

    @field_validator("documents", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        """The wizard's field gives one path as text; a plan or the command line, a list."""
        if isinstance(value, str):
            return [value] if value.strip() else []
        return value

    @model_validator(mode="after")
    def _needs(self) -> TeacherPlan:
        if not self.base_url:
            raise ValueError(_("base_url: a custom provider needs its endpoint's URL"))
        if sum(map(bool, (self.prompts, self.topic, self.documents))) > 1:
            raise ValueError(_("set one of prompts, topic or documents"))
        return self

    @field_validator("api_key_env")
    @classmethod
    def _looks_like_a_variable_name(cls, value: str) -> str:
        if value and (not value.replace("_", "a").isalnum() or value[0].isdigit()):
            raise ValueError(
                _(
                    "must be the NAME of an environment variable (e.g. DEEPSEEK_API_KEY), "
                    "never the key itself"
                )
            )
        return value


class DatasetPlan(_Section):
    """Where the training conversations come from and how to read them."""

    source: str = Field("yahma/alpaca-cleaned", description="Hub id or local file.")
    split: str = Field("train[:1%]", description="Split expression for hub datasets.")
    format: DatasetFormat = "auto"
    mapping: dict[str, str] = Field(
        default_factory=dict, description="Role -> column, e.g. {prompt='question'}."
    )
    eval_fraction: float = Field(0.05, ge=0.0, lt=1.0, description="Held out for evaluation.")
    overflow: Overflow = Field(
        "drop", description="Rows longer than max_seq_length: drop | truncate."
    )
    drop_duplicates: bool = True
    max_unusable_share: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Refuse to train when more of the rows than this (0..1) are unusable.",
    )
    replay_fraction: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="Share of the training rows (0..1) the base model writes itself, answering "
        "general prompts, so the student keeps what the base knew (0: off).",
    )
    replay_max_rows: int = Field(
        200,
        ge=1,
        description="At most this many replay rows (and base-model answers), however large the "
        "data: more only repeats the same answers.",
    )
    replay_prompts: str = Field(
        "", description="Prompt file for replay (text, one a line); empty: the built-in set."
    )


class StudentPlan(_Section):
    """The small model that learns."""

    model: str = Field("unsloth/Qwen2.5-1.5B-Instruct", description="Hub id or local folder.")
    source: Literal["huggingface", "modelscope"] = Field(
        "huggingface",
        description="Hub a model id is fetched from: huggingface (HF_ENDPOINT for a mirror) "
        "| modelscope (needs `pip install modelscope`).",
    )
    max_seq_length: int = Field(2048, ge=16, le=131072)
    load_in_4bit: bool = True
    dtype: Dtype = Field("auto", description="auto picks bf16 where supported, else fp16.")
    backend: Backend = "auto"


class LoraPlan(_Section):
    """Low-rank adapter settings."""

    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(16, ge=1, le=4096)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: list(ALL_PROJECTIONS), min_length=1)


class TrainingPlan(_Section):
    """Optimiser and schedule. Set ``max_steps`` or ``epochs``, not both."""

    max_steps: int | None = Field(60, ge=1)
    epochs: float | None = Field(None, gt=0)
    batch_size: int = Field(2, ge=1, le=1024)
    grad_accum: int = Field(4, ge=1, le=1024)
    learning_rate: float = Field(2e-4, gt=0, le=1.0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_steps: int = Field(5, ge=0)
    optimizer: Literal[
        "adamw_8bit", "adamw_torch", "adamw_torch_fused", "paged_adamw_8bit", "sgd"
    ] = "adamw_8bit"
    weight_decay: float = Field(0.01, ge=0.0, le=1.0)
    seed: int = Field(
        3407, description="Draws LoRA's starting weights and the row order: a plan trains the same."
    )
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(20, ge=1)
    save_minutes: float = Field(15.0, gt=0, description="Also checkpoint on wall time.")
    batching: Literal["auto", "padded", "padding_free", "packed"] = Field(
        "auto",
        description="auto = padded micro-batches, length-grouped when rebatch is on (measured "
        "fastest on an H100); with rebatch off on unsloth, padding-free, as the notebook gets. "
        "padding_free/packed: unsloth backend only.",
    )
    rebatch: bool = Field(
        True,
        description="Keep batch_size x grad_accum samples per step, in fewer, larger, "
        "length-grouped micro-batches where the memory estimate allows (several times faster "
        "on a GPU; on H100/H200-class cards also fused AdamW with full-precision states in place "
        "of adamw_8bit). false = the notebook's batching, sampling and optimizer, exactly.",
    )
    gpus: Literal["auto"] | StrictInt | list[StrictInt] = Field(
        "auto",
        description="Processes that train together (PyTorch DDP through torchrun): auto = every "
        "visible GPU (one process where there is one GPU or none); N = N processes (on a CPU, N "
        "gloo processes); [ids] = those GPUs. Samples per step stay batch_size x grad_accum.",
    )
    gradient_checkpointing: Literal["auto", "unsloth", "on", "off"] = Field(
        "auto",
        description="auto = off where the memory estimate says the run fits with room (about "
        "1.6x faster on an H100/H200), else unsloth's offloaded checkpointing (least memory, "
        "right for a 15 GB T4, and what rebatch = false keeps). on = plain checkpointing kept on "
        "the GPU.",
    )

    @model_validator(mode="before")
    @classmethod
    def _steps_or_epochs(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("epochs") is not None:
            if data.get("max_steps") is not None:
                raise ValueError(_("set max_steps or epochs, not both"))
            data = {**data, "max_steps": None}
        return data

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpus(cls, value: Any) -> Any:
        """One message for every wrong shape (a union would list one per alternative)."""
        if value == "auto" or (type(value) is int and value >= 1):
            return value
        ids = isinstance(value, list) and all(type(i) is int and i >= 0 for i in value)
        if ids and value and len(set(value)) == len(value):
            return value
        raise PydanticCustomError(
            "gpus",
            'must be "auto", a number of processes (1 or more), or a list of GPU ids named '
            "once each, e.g. [0, 1]",
        )

    @model_validator(mode="after")
    def _one_budget(self) -> TrainingPlan:
        if self.max_steps is None and self.epochs is None:
            raise ValueError(_("set max_steps or epochs"))
        return self


class EvalPlan(_Section):
    """What ``stillroom eval`` measures beyond the held-out rows."""

    control: str = Field(
        "",
        description="Your own control prompts for retention (text, one a line, or JSONL with "
        "prompt and facts), scored with the built-in set.",
    )


class OutputPlan(_Section):
    """Where runs are written."""

    runs_dir: str = "runs"
    name: str = Field("qwen-distill", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")


class Plan(_Section):
    """One distillation run, end to end."""

    teacher: TeacherPlan = Field(default_factory=TeacherPlan)
    dataset: DatasetPlan = Field(default_factory=DatasetPlan)
    student: StudentPlan = Field(default_factory=StudentPlan)
    lora: LoraPlan = Field(default_factory=LoraPlan)
    training: TrainingPlan = Field(default_factory=TrainingPlan)
    eval: EvalPlan = Field(default_factory=EvalPlan)
    output: OutputPlan = Field(default_factory=OutputPlan)

    def to_dict(self, *, only_changes: bool = False) -> dict[str, Any]:
        """Plain data for TOML: ``None`` values dropped (TOML has no null)."""
        data = self.model_dump(mode="json", exclude_defaults=only_changes)
        return _drop_none(data)

    def to_toml(self, *, only_changes: bool = False) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict(only_changes=only_changes))

    def fingerprint(self) -> str:
        """A short stable hash of the full plan, to tell runs of different plans apart."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


# pydantic's own messages for the usual mistakes in a plan, for languages other than English
# (English keeps pydantic's wording); the placeholders are the error's context.
_PYDANTIC_MESSAGES = {
    "greater_than": N_("must be greater than {gt}"),
    "greater_than_equal": N_("must be at least {ge}"),
    "less_than": N_("must be less than {lt}"),
    "less_than_equal": N_("must be at most {le}"),
    "int_parsing": N_("must be a whole number"),
    "int_type": N_("must be a whole number"),
    "int_from_float": N_("must be a whole number"),
    "float_parsing": N_("must be a number"),
    "float_type": N_("must be a number"),
    "bool_parsing": N_("must be true or false"),
    "bool_type": N_("must be true or false"),
    "string_type": N_("must be text in quotes"),
    "list_type": N_("must be a list"),
    "dict_type": N_("must be a table"),
    "string_pattern_mismatch": N_("must match the pattern {pattern}"),
    "missing": N_("is required"),
}


def _pydantic_message(kind: str, message: str, context: dict[str, Any]) -> str:
    """pydantic's message in the current language, where the catalog has its kind."""
    if current_language() == "en" or kind not in _PYDANTIC_MESSAGES:
        return message
    shown = {k: f"{v:g}" if isinstance(v, float) else v for k, v in context.items()}
    try:
        return _(_PYDANTIC_MESSAGES[kind]).format(**shown)
    except (KeyError, IndexError):  # a context this pydantic version names differently
        return message


def describe_errors(error: ValidationError) -> list[str]:
    """Turn pydantic's errors into ``section.key: what is wrong (got X)`` lines; a value
    that looks like an API key is never shown back."""
    from engine.teacher.keys import shown

    lines = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(top level)"
        kind = item["type"]
        if kind == "extra_forbidden":
            lines.append(
                _(
                    "{path}: unknown key (check the spelling; see `stillroom plan --defaults`)"
                ).format(path=path)
            )
            continue
        message = _pydantic_message(kind, item["msg"], item.get("ctx", {}))
        message = message.removeprefix("Value error, ")
        if kind == "literal_error":
            expected = item.get("ctx", {}).get("expected", "")
            message = _("must be one of {expected}").format(expected=expected)
        got = item.get("input")
        if kind not in ("missing", KEY_ERROR) and not isinstance(got, (dict, list)):
            message = _("{message} (got {value})").format(message=message, value=shown(got))
        lines.append(f"{path}: {message}")
    return lines


def plan_from_dict(data: dict[str, Any], source: str = "plan") -> Plan:
    """Validate plain data as a plan, or raise :class:`PlanError` with every fault."""
    try:
        return Plan.model_validate(data)
    except ValidationError as error:
        raise PlanError(source, describe_errors(error)) from None


# No plan key nests deeper than a few levels (extra_body may hold a small JSON object).
MAX_DEPTH = 32


def load_plan(path: str | Path) -> Plan:
    """Read and validate a TOML plan file; every way it can be unusable is a :class:`PlanError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PlanError(
            str(path),
            [_("file not found")],
            hint=_(
                "Check the path, or write a plan: `stillroom plan --defaults > {path}` "
                "(the wizard, `stillroom`, writes one too)."
            ).format(path=path),
        ) from None
    except PermissionError:
        raise PlanError(
            str(path),
            [_("not readable: permission denied")],
            hint=_("Make it readable (`chmod u+r {path}`), or run as the user who owns it.").format(
                path=path
            ),
        ) from None
    except (UnicodeDecodeError, OSError) as error:
        raise PlanError(
            str(path),
            [_("not a readable TOML text file ({error})").format(error=error)],
            hint=_(_START_OVER),
        ) from None
    too_deep = PlanError(
        str(path),
        [_("nested deeper than {depth} levels (arrays or tables)").format(depth=MAX_DEPTH)],
        hint=_(_START_OVER),
    )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PlanError(str(path), [_("not valid TOML: {error}").format(error=error)]) from None
    except RecursionError:  # the parser recurses once per level
        raise too_deep from None
    if _depth(data) > MAX_DEPTH:  # deep but parsed: validation and saving recurse too
        raise too_deep
    return plan_from_dict(data, str(path))


def _depth(value: Any) -> int:
    """How deeply lists and tables nest in ``value``, counted without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            todo.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, level + 1) for v in item)
    return deepest


def save_plan(plan: Plan, path: str | Path, *, only_changes: bool = False) -> None:
    """Write the plan atomically; ``only_changes`` writes just the non-default keys."""
    header = "# Stillroom plan. Every key not written here takes its default.\n"
    atomic_write_text(path, header + plan.to_toml(only_changes=only_changes))
