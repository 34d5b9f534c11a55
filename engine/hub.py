"""Where the student model comes from: a local folder, the hub cache, or the hub itself.

A hub that cannot be reached used to cost 50-55 s of silent retries inside
``from_pretrained`` and then surface as a dataset error. :func:`locate_model`
answers within a few seconds, says which of the two fixes applies (use the
cache offline, or point ``student.model`` at a folder), and, when the hub is
down but a cached copy exists, switches this process to the cache so the
libraries stop retrying. The hub's answer is remembered for the process: a
wizard session or a training child asks it once.

The student can also come from ModelScope (``student.source = "modelscope"``),
the hub mainland-China users reach: the ``modelscope`` package downloads it
(not a dependency; asked for by name when missing), Unsloth is pointed there
with ``UNSLOTH_USE_MODELSCOPE=1``, and ids the two hubs spell differently are
translated (:data:`MODELSCOPE_IDS`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from engine.errors import UserError
from engine.i18n import _

HUB_TIMEOUT_S = 5.0
# Asked about when any answer will do: a small public model that has long existed.
PROBE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
# A hub id: "name" or "owner/name" (letters, digits, -, _, .); anything else is a path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

Kind = Literal["folder", "cached", "hub"]
Source = Literal["huggingface", "modelscope"]

# Hugging Face id -> ModelScope id, where the two hubs name the same weights differently.
# Unsloth's 16-bit copies are Qwen's own weights, which ModelScope keeps under "Qwen/".
# Checked 2026-11-30: Qwen/Qwen2.5-1.5B-Instruct is the id projects pass to ModelScope's
# snapshot_download; the 0.5B/3B/7B rows follow the same naming, not checked one by one.
# Ids not listed are asked for as they are.
MODELSCOPE_IDS = {
    "unsloth/Qwen2.5-0.5B-Instruct": "Qwen/Qwen2.5-0.5B-Instruct",
    "unsloth/Qwen2.5-1.5B-Instruct": "Qwen/Qwen2.5-1.5B-Instruct",
    "unsloth/Qwen2.5-3B-Instruct": "Qwen/Qwen2.5-3B-Instruct",
    "unsloth/Qwen2.5-7B-Instruct": "Qwen/Qwen2.5-7B-Instruct",
}
MODELSCOPE_PIP = "pip install modelscope"


@dataclass(frozen=True)
class ModelSource:
    """Where ``model`` will be loaded from, and a line the user can read."""

    model: str
    kind: Kind
    detail: str


# endpoint -> why it could not be reached; filled once per process.
_unreachable: dict[str, str] = {}


def endpoint() -> str:
    """The hub the libraries talk to (``HF_ENDPOINT`` for a mirror)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def needs_network(model: str, source: Source = "huggingface") -> bool:
    """Whether :func:`locate_model` (with ``ask_hub=False``) would have to ask the hub."""
    return (
        source == "huggingface"
        and not Path(model).expanduser().exists()
        and bool(_HUB_ID.match(model))
        and not offline()
        and endpoint() not in _unreachable
        and not _cached(model)
    )


def locate_model(
    model: str, *, ask_hub: bool = True, whole: bool = True, source: Source = "huggingface"
) -> ModelSource:
    """Where ``model`` loads from; a :class:`UserError` naming the fix when nowhere.

    ``ask_hub=False`` takes a cached copy as it is, without asking whether the hub
    is up (enough to validate a plan; training asks, to stop the libraries' retries).
    ``whole=False`` accepts a local folder without config.json (a tokenizer alone).
    ``source="modelscope"``: a hub id is fetched from ModelScope (not asked here).
    """
    folder = Path(model).expanduser()
    if folder.exists():
        return _local_folder(model, folder, whole)
    if source == "modelscope" and _HUB_ID.match(model):
        _modelscope()
        named = modelscope_id(model)
        detail = _("on ModelScope as {model}; downloaded at first use").format(model=named)
        return ModelSource(named, "hub", detail)
    if not _HUB_ID.match(model):
        raise UserError(
            _("Student model {model!r}: no folder at that path.").format(model=model),
            hint=_(
                "Check the path, or give a hub id such as unsloth/Qwen2.5-1.5B-Instruct. Point "
                "student.model at a local model folder (one holding config.json)."
            ),
        )
    if _cached(model):
        if offline():
            use_cache_only()  # the libraries may have read the variable before it was set
            return ModelSource(model, "cached", _("in the hub cache"))
        if not ask_hub:
            return ModelSource(model, "cached", _("in the hub cache"))
        reason = _hub_problem(model, cached=True)
        if reason:
            use_cache_only()
            return ModelSource(
                model,
                "cached",
                _("in the hub cache; {reason}, so the cached copy is used").format(reason=reason),
            )
        return ModelSource(model, "cached", _("in the hub cache"))
    if offline():
        raise UserError(
            _(
                "Student model {model!r}: no local folder of that name, and it is not in the "
                "Hugging Face cache (HF_HUB_OFFLINE=1 is set, so nothing is downloaded)."
            ).format(model=model),
            hint=_(
                "Point student.model at a local model folder (one holding config.json), or "
                "unset HF_HUB_OFFLINE on a machine with hub access so it can be downloaded once."
            ),
        )
    reason = _hub_problem(model, cached=False)
    if reason:
        raise UserError(
            _(
                "Student model {model!r} could not be fetched: {reason}, and no copy is in the "
                "Hugging Face cache."
            ).format(model=model, reason=reason),
            hint=_hint_for(reason),
        )
    detail = _("on the hub at {endpoint}; downloaded at first use").format(endpoint=endpoint())
    return ModelSource(model, "hub", detail)


def modelscope_id(model: str) -> str:
    """The id ModelScope gives the weights Hugging Face calls ``model``."""
    return MODELSCOPE_IDS.get(model, model)


def _modelscope() -> Any:
    """The ``modelscope`` package, or a :class:`UserError` with the command that installs it."""
    try:
        import modelscope
    except ImportError:
        raise UserError(
            _(
                'student.source = "modelscope" needs the modelscope package, which is not '
                "installed."
            ),
            hint=_(
                'Install it with `{command}`, or set student.source = "huggingface" '
                "(with HF_ENDPOINT for a mirror)."
            ).format(command=MODELSCOPE_PIP),
        ) from None
    return modelscope


def from_modelscope(model: str) -> str:
    """The local folder of ``model`` downloaded from ModelScope (a local path as it is).

    Also sets ``UNSLOTH_USE_MODELSCOPE=1`` for this process and its children, so
    Unsloth, imported after this, looks up anything it fetches there too.
    """
    if Path(model).expanduser().exists():
        return model
    snapshot = _modelscope().snapshot_download
    os.environ["UNSLOTH_USE_MODELSCOPE"] = "1"
    return str(snapshot(modelscope_id(model)))


def student_on_disk(plan: Any) -> Any:
    """``plan`` with a ModelScope student replaced by its downloaded folder (else as it is).

    Called where training starts (the trainer and its dataset child), so both the
    tokenizer and the weights load from the same folder, whichever backend trains.
    """
    student = plan.student
    if student.source != "modelscope":
        return plan
    folder = from_modelscope(student.model)
    return plan.model_copy(update={"student": student.model_copy(update={"model": folder})})


def _hint_for(reason: str) -> str:
    if reason == _no_such_model(endpoint()):
        return _(
            "Check the spelling (e.g. unsloth/Qwen2.5-1.5B-Instruct), or give a local folder. "
            "Point student.model at a local model folder (one holding config.json)."
        )
    if reason == _gated():
        return _(
            "Accept the model's licence on its hub page and export HF_TOKEN, or pick another model."
        )
    return _(
        "Point student.model at a local model folder (one holding config.json), or download it "
        "where the hub can be reached; set HF_ENDPOINT if a mirror serves the hub, or "
        "HF_HUB_OFFLINE=1 to use only models already in the cache."
    )


def use_cache_only() -> None:
    """Make this process (and its children) load from the cache without asking the hub."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from huggingface_hub import constants
    except ImportError:
        return
    # The libraries read this module global at call time; it was fixed at import.
    constants.HF_HUB_OFFLINE = True


def _local_folder(model: str, folder: Path, whole: bool) -> ModelSource:
    if not folder.is_dir():
        raise UserError(
            _("Student model {model!r} is a file, not a model folder.").format(model=model),
            hint=_(
                "Point student.model at a local model folder (one holding config.json), or give "
                "a hub id."
            ),
        )
    if whole and not (folder / "config.json").is_file():
        raise UserError(
            _(
                "Student model folder {model} has no config.json, so it is not a model folder."
            ).format(model=model),
            hint=_(
                "Give the folder that holds config.json and the weights (the one save_pretrained "
                "wrote)."
            ),
        )
    return ModelSource(model, "folder", _("local folder {path}").format(path=folder.resolve()))


def _cached(model: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:  # HF_HUB_CACHE read now, not at import, so a long-lived wizard sees a change
        found = try_to_load_from_cache(
            model, "config.json", cache_dir=os.environ.get("HF_HUB_CACHE") or None
        )
        return isinstance(found, str)
    except Exception:  # noqa: BLE001 - a malformed id or cache is simply "not cached"
        return False


def hub_reachable() -> str:
    """Empty when the hub answers from here, else why not (offline mode counts as not)."""
    if offline():
        return _("offline mode is on (HF_HUB_OFFLINE)")
    return _hub_problem(PROBE_MODEL, cached=False)


def _hub_problem(model: str, *, cached: bool) -> str:
    """Why the hub cannot give ``model`` (empty when it can), asked once per endpoint."""
    where = endpoint()
    if where in _unreachable:
        return _unreachable[where]
    from huggingface_hub import model_info
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        model_info(model, timeout=HUB_TIMEOUT_S)
    except GatedRepoError:
        return "" if cached else _gated()
    except RepositoryNotFoundError:
        return "" if cached else _no_such_model(where)
    except Exception as error:  # noqa: BLE001 - timeouts, refused connections, HTML portals
        reason = _("the hub at {endpoint} could not be reached ({error})").format(
            endpoint=where, error=_short(error)
        )
        _unreachable[where] = reason
        return reason
    return ""


def _gated() -> str:
    return _("the hub says access is restricted (a gated model)")


def _no_such_model(where: str) -> str:
    return _("no model of that name on the hub at {endpoint}").format(endpoint=where)


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    name = type(error).__name__
    return f"{name}: {text[:120]}" if text else name
