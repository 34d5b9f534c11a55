"""Events: the one protocol between the engine and whoever watches it.

Every child job (``python -m engine JOB``: train, prepare, generate, chat-serve,
eval, export) emits small typed records, one JSON object a
line: training into the run's ``events.jsonl``, the others on their stdout
(see :mod:`engine.spawn`). The TUI, the headless CLI and the tests all read the
same family. Every job ends with exactly one terminal event: ``finished``,
``cancelled`` or ``error``; a reader that sees a child end without one
synthesises an ``error`` (kind ``crashed``) from its exit status and log.

Stdlib only: importing this module must stay cheap (no torch, no pydantic).
"""

from __future__ import annotations

import json
import time
import types
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from functools import cache
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

_REGISTRY: dict[str, type[Event]] = {}


@dataclass(frozen=True)
class Event:
    """Base class; ``type`` names the record on the wire, ``t`` is a Unix time."""

    type: ClassVar[str] = "event"
    t: float = field(default_factory=time.time, kw_only=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.type in _REGISTRY:
            raise TypeError(f"event type {cls.type!r} defined twice")
        _REGISTRY[cls.type] = cls


@dataclass(frozen=True)
class Started(Event):
    """A job began: what does the work, where, on which model, and which plan.

    The fields mean the same for every job: ``backend`` is the software that does
    the work (unsloth, hf, or api for a teacher endpoint), ``device`` where it runs
    (cpu, cuda:0, or the endpoint's URL), ``model`` the model it runs or asks.
    ``attempt`` counts the runs of one run folder (1, then 2 for the first resume, ...),
    so a reader can tell the attempt it follows from the history before it.
    """

    type: ClassVar[str] = "started"
    job: str
    backend: str = ""
    backend_reason: str = ""
    device: str = ""
    model: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    plan_hash: str = ""
    max_steps: int | None = None
    pid: int | None = None
    attempt: int = 1
    processes: int | None = None  # train and probe: the processes that train together


@dataclass(frozen=True)
class Step(Event):
    """One optimiser step's metrics. Token rates count non-padding tokens only."""

    type: ClassVar[str] = "step"
    step: int
    max_steps: int
    epoch: float = 0.0
    loss: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    samples_per_s: float | None = None
    eta_s: float | None = None
    mem_allocated_mb: float | None = None
    mem_reserved_mb: float | None = None
    mfu: float | None = None  # model FLOPs utilisation, 0-1; null where the card's peak is unknown


@dataclass(frozen=True)
class GpuProcess:
    """Memory one process holds on a GPU."""

    pid: int
    mem_used_mb: float
    name: str = ""
    own: bool = False


@dataclass(frozen=True)
class GpuSample(Event):
    """One NVML reading of one GPU."""

    type: ClassVar[str] = "gpu"
    index: int
    name: str
    mem_used_mb: float
    mem_total_mb: float
    util_pct: float | None = None
    temp_c: float | None = None
    power_w: float | None = None
    processes: tuple[GpuProcess, ...] = ()


@dataclass(frozen=True)
class Progress(Event):
    """Progress of a job counted in items (teacher answers, eval prompts).

    ``stage`` names the part of a job with stages (eval: recall, then retention's);
    ``elapsed_s`` and ``eta_s`` count from the start of that stage.
    """

    type: ClassVar[str] = "progress"
    job: str
    done: int
    total: int
    stage: str = ""
    failed: int = 0
    in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    eta_s: float | None = None


@dataclass(frozen=True)
class Log(Event):
    """A line of library output worth showing."""

    type: ClassVar[str] = "log"
    line: str


@dataclass(frozen=True)
class Checkpoint(Event):
    """A checkpoint finished writing and can be resumed from."""

    type: ClassVar[str] = "checkpoint"
    step: int
    path: str


@dataclass(frozen=True)
class Warning(Event):  # noqa: A001 - shadows the builtin on purpose: the wire name is "warning"
    """Something the user should know that does not stop the job."""

    type: ClassVar[str] = "warning"
    message: str
    hint: str = ""


@dataclass(frozen=True)
class DataReport(Event):
    """What the dataset holds and how much of it training can use, counted as
    ``stillroom inspect`` counts it, before the model loads."""

    type: ClassVar[str] = "data"
    source: str
    records: int  # everything written as a row, lines that do not parse included
    usable: int  # rows training uses, the eval hold-out included
    unusable: int  # rows it cannot use (repeats dropped as duplicates are not counted)
    problems: dict[str, int] = field(default_factory=dict)  # kind -> rows, inspect's kinds
    max_unusable_share: float = 1.0  # the plan's limit; more unusable than this refuses


@dataclass(frozen=True)
class Ready(Event):
    """A serving job (chat-serve) loaded its model and takes requests."""

    type: ClassVar[str] = "ready"
    job: str
    run: str  # the run folder, as a path
    backend: str = ""


@dataclass(frozen=True)
class Token(Event):
    """A piece of an answer, as it streams."""

    type: ClassVar[str] = "token"
    text: str


@dataclass(frozen=True)
class Answer(Event):
    """A whole answer and how it ended: at the end-of-turn token, or cut by the budget."""

    type: ClassVar[str] = "answer"
    text: str
    tokens: int = 0
    cut: bool = False
    ended_cleanly: bool = False
    ttft_s: float | None = None  # time to first token
    tokens_per_s: float | None = None


@dataclass(frozen=True)
class Refused(Event):
    """A request a serving job could not answer; unlike ``error``, the job goes on."""

    type: ClassVar[str] = "refused"
    message: str
    hint: str = ""


@dataclass(frozen=True)
class Result(Event):
    """What a job produced: the files it wrote (name -> path) and whether they need a look."""

    type: ClassVar[str] = "result"
    job: str
    paths: dict[str, str] = field(default_factory=dict)
    flagged: bool = False  # written, but something is wrong with it (an export's parity)
    summary: str = ""
    counts: dict[str, float] = field(default_factory=dict)  # what it counted (generate's answers)


@dataclass(frozen=True)
class Finished(Event):
    """Terminal: the job completed."""

    type: ClassVar[str] = "finished"
    adapter_path: str = ""
    train_loss: float | None = None
    runtime_s: float = 0.0
    steps: int = 0


@dataclass(frozen=True)
class Cancelled(Event):
    """Terminal: the user stopped the job; what was done is kept."""

    type: ClassVar[str] = "cancelled"
    step: int = 0
    adapter_path: str = ""


@dataclass(frozen=True)
class Error(Event):
    """Terminal: the job failed. ``hint`` says what to do about it.

    ``exit_code`` is the child's exit status where the reader saw it end.
    """

    type: ClassVar[str] = "error"
    kind: str
    message: str
    hint: str = ""
    log_tail: str = ""
    exit_code: int | None = None


TERMINAL = frozenset({Finished.type, Cancelled.type, Error.type})


def encode(event: Event) -> str:
    """One JSON line (without the newline)."""
    return json.dumps({"type": event.type, **asdict(event)}, ensure_ascii=False)


def decode(line: str | dict[str, Any]) -> Event:
    """Parse one line (or its dict) back into its event; unknown keys are ignored.

    A field of the wrong kind (a loss that is not a number) raises ``ValueError``
    like bad JSON does, so a damaged line never reaches a reader as an event.
    """
    data = json.loads(line) if isinstance(line, str) else dict(line)
    if not isinstance(data, dict):
        raise ValueError("an event is a JSON object")
    kind = data.pop("type", None)
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event type {kind!r}")
    hints = _field_types(cls)
    values = {k: v for k, v in data.items() if k in hints}
    for name, value in values.items():
        if not _fits(value, hints[name]):
            raise ValueError(f"{kind}.{name} cannot be {value!r}")
    if cls is GpuSample and "processes" in values:
        values["processes"] = tuple(GpuProcess(**p) for p in values["processes"])
    for name in ("versions", "paths", "counts"):
        if isinstance(values.get(name), dict):
            values[name] = dict(values[name])
    return cls(**values)


@cache
def _field_types(cls: type) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in get_type_hints(cls).items() if k in names}


def _fits(value: Any, hint: Any) -> bool:
    """Whether a decoded JSON value is of the annotated kind (ints count as floats)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, option) for option in get_args(hint))
    if hint is type(None):
        return value is None
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))
    if hint in (int, str):
        return isinstance(value, hint)
    if origin is dict:
        item = get_args(hint)[1]
        return isinstance(value, dict) and all(_fits(v, item) for v in value.values())
    if origin is tuple:
        item = get_args(hint)[0]
        return isinstance(value, (list, tuple)) and all(_fits(v, item) for v in value)
    if is_dataclass(hint):
        kinds = _field_types(hint)
        return isinstance(value, dict) and all(
            k in kinds and _fits(v, kinds[k]) for k, v in value.items()
        )
    return True


def event_types() -> dict[str, type[Event]]:
    """Every registered event type by wire name (for docs and schema tests)."""
    return dict(_REGISTRY)
