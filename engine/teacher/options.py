"""The teacher's command-line options, shared by ``stillroom generate`` and ``python -m engine
generate``: flags override the plan's ``[teacher]`` section field by field, as the plan
overrides its provider's preset (``engine.teacher.providers.layered``).

No flag takes the API key: it is read from the environment variable the plan names,
so it never lands on a command line, where any process of the machine can read it.
"""

from __future__ import annotations

import argparse
from typing import Any, get_args

from engine.i18n import _
from engine.plan import PlanError, Provider, TeacherPlan, describe_errors, load_plan

# flag -> TeacherPlan key, for the flags that map one to one
_FLAGS = {
    "provider": "provider",
    "base_url": "base_url",
    "model": "model",
    "api_key_env": "api_key_env",
    "concurrency": "concurrency",
    "system": "system",
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "prompts": "prompts",
    "topic": "topic",
    "count": "count",
    "docs": "documents",
    "questions_per_chunk": "questions_per_chunk",
    "chunk_tokens": "chunk_tokens",
    "out": "output",
    "budget": "budget_usd",
    "limit": "limit",
    "timeout": "timeout_s",
    "stream": "stream",
}


def add_teacher_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The prompts, documents, teacher and run flags; returns the run group for more."""
    source = parser.add_argument_group(_("prompts"))
    source.add_argument(
        "--prompts", metavar="FILE", help=_("text file (one a line), JSONL or dataset")
    )
    source.add_argument(
        "--topic", metavar="TEXT", help=_("let the teacher write questions on this")
    )
    source.add_argument("--count", type=int, metavar="N", help=_("questions to write for --topic"))
    source.add_argument("--limit", type=int, metavar="N", help=_("answer only the first N prompts"))
    docs = parser.add_argument_group(
        _("documents"),
        _("have the teacher write questions on your files, then answer each from its passage"),
    )
    docs.add_argument(
        "--docs",
        nargs="+",
        metavar="PATH",
        help=_("files or folders (.txt .md .pdf .docx .html), read recursively"),
    )
    docs.add_argument(
        "--questions-per-chunk", type=int, metavar="N", help=_("questions per chunk (default 5)")
    )
    docs.add_argument(
        "--chunk-tokens", type=int, metavar="T", help=_("chunk size in tokens (default 600)")
    )
    teacher = parser.add_argument_group(_("teacher"))
    teacher.add_argument(
        "--plan", metavar="PLAN", help=_("take the [teacher] settings from a plan")
    )
    teacher.add_argument(
        "--provider",
        type=_provider,
        metavar="{" + ",".join(get_args(Provider)) + "}",
        help=_("preset (default: the one --base-url names, else deepseek)"),
    )
    teacher.add_argument("--base-url", metavar="URL", help=_("OpenAI-compatible endpoint"))
    teacher.add_argument("--model", metavar="NAME", help=_("model id (see --list-models)"))
    teacher.add_argument(
        "--api-key-env", metavar="VAR", help=_("environment variable holding the key ('' for none)")
    )
    teacher.add_argument("--system", metavar="TEXT", help=_("system prompt ('' for none)"))
    teacher.add_argument("--max-tokens", type=int, metavar="N", help=_("answer budget per prompt"))
    teacher.add_argument("--temperature", type=float, metavar="T")
    teacher.add_argument("--concurrency", type=int, metavar="N", help=_("requests in flight"))
    teacher.add_argument("--timeout", type=float, metavar="S", help=_("seconds without a byte"))
    teacher.add_argument(
        "--stream", action=argparse.BooleanOptionalAction, default=None, help=_("stream answers")
    )
    run = parser.add_argument_group(_("run"))
    run.add_argument("--out", metavar="FILE.jsonl", help=_("output file (default: teacher.jsonl)"))
    run.add_argument("--budget", type=float, metavar="USD", help=_("stop cleanly once spent"))
    return run


def _provider(value: str) -> str:
    """A preset name; argparse's own refusal would print a key pasted here back."""
    from engine.teacher.keys import shown

    if value not in get_args(Provider):
        names = ", ".join(get_args(Provider))
        raise argparse.ArgumentTypeError(
            _("must be one of {names} (got {value})").format(names=names, value=shown(value))
        )
    return value


def teacher_from_args(args: argparse.Namespace) -> TeacherPlan:
    """The plan's teacher as written with the flags over it: preset < plan < flags, per field."""
    from pydantic import ValidationError

    from engine.teacher.providers import layered

    plan = load_plan(args.plan) if args.plan else None
    written: dict[str, Any] = plan.teacher.model_dump(exclude_unset=True) if plan else {}
    given = {key: getattr(args, flag) for flag, key in _FLAGS.items()}
    given = {key: value for key, value in given.items() if value is not None}
    sources = {"prompts", "topic", "documents"}
    for chosen in sources:  # a source given on the command line replaces the plan's
        if given.get(chosen):
            for other in sources - {chosen}:
                written.pop(other, None)
    source = f"{args.plan} with the command line" if args.plan else "the command line"
    try:
        return TeacherPlan.model_validate(layered(written, given))
    except ValidationError as error:
        problems = [f"teacher.{line}" for line in describe_errors(error)]
        raise PlanError(source, problems) from None
