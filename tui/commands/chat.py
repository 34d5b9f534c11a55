"""``stillroom chat``: talk to a trained student, or print one streamed answer for scripts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO

from engine.errors import UserError
from engine.i18n import _


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chat",
        help=_("talk to a run's student; --prompt prints one streamed answer"),
        description=_(
            "Talk to RUN's student (base model + adapter). In a terminal this opens the "
            "wizard's Chat step on RUN (compare, evaluation and export included). With "
            "--prompt, stream one answer to stdout and exit (--base: the base model, "
            "--compare: student, base and teacher). With --lines, or when input or output "
            "is not a terminal, a line-based chat: multi-turn, /reset forgets the history, "
            "/quit (or Ctrl-D) leaves."
        ),
    )
    add_run_arguments(parser)
    parser.add_argument("--prompt", metavar="TEXT", help=_("answer this one prompt and exit"))
    parser.add_argument(
        "--lines", action="store_true", help=_("a line-based chat instead of the wizard")
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--base", action="store_true", help=_("the base model, adapter off"))
    which.add_argument(
        "--compare", action="store_true", help=_("student, base and teacher, one after the other")
    )
    parser.add_argument("--system", metavar="TEXT", help=_("system prompt"))
    parser.add_argument("--temperature", type=float, default=0.0, help=_("0 = greedy (default)"))
    parser.add_argument(
        "--top-p", type=float, default=1.0, help=_("default: 1.0 (--prompt and --lines only)")
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help=_("answer budget (default: 1024)")
    )
    parser.set_defaults(func=run)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """RUN as ``stillroom attach`` takes it, defaulting to the newest trained run."""
    parser.add_argument(
        "run", nargs="?", help=_("run name or folder (default: the newest trained)")
    )
    parser.add_argument("--runs-dir", default="runs", help=_("default: runs"))


def run(args: argparse.Namespace) -> int:
    from engine.chat import DEFAULT_MAX_NEW_TOKENS, keep_to_the_runs_card, load_student, resolve_run
    from engine.stdout import answers_only

    run_dir = resolve_run(args.run, args.runs_dir)
    if _opens_the_wizard(args):
        return _wizard(args, run_dir)
    options = {
        "system": args.system,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_new_tokens": args.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
    }
    out = answers_only()
    keep_to_the_runs_card(run_dir)
    student = load_student(run_dir, base_only=args.base)
    if args.prompt is not None:
        messages = [{"role": "user", "content": args.prompt}]
        if not args.compare:
            _print_stream(out, student, messages, **options)
            return 0
        from engine.chat import ask_teacher

        for label, base in ((_("student"), False), (_("base"), True)):
            print(f"== {label} ==", file=out, flush=True)
            _print_stream(out, student, messages, base=base, **options)
        print("== " + _("teacher") + " ==", file=out, flush=True)
        teacher = ask_teacher(student.plan.teacher, messages, args.system)
        print(teacher.text or f"({teacher.note})", file=out, flush=True)
        return 0
    return _repl(out, student, options)


def _opens_the_wizard(args: argparse.Namespace) -> bool:
    """A person at a terminal gets the Chat step; scripts, pipes and --lines get lines."""
    if args.prompt is not None or args.lines or args.base or args.compare:
        return False
    return sys.stdin.isatty() and sys.stdout.isatty()


def _wizard(args: argparse.Namespace, run_dir: Path) -> int:
    from engine.chat_options import DEFAULT_MAX_NEW_TOKENS, ChatOptions
    from tui.app import run_wizard
    from tui.cli import wizard_theme

    try:
        options = ChatOptions.parse(
            str(args.max_new_tokens or DEFAULT_MAX_NEW_TOKENS),
            args.system or "",
            str(args.temperature),
        )
    except ValueError as error:
        raise UserError(str(error), hint=_("Fix the option and run the command again.")) from None
    return run_wizard(
        args.wizard_plan, wizard_theme(args.theme), chat_run=run_dir, chat_options=options
    )


def _print_stream(out: IO[str], student, messages, **options) -> str:
    generation = student.stream(messages, **options)
    for piece in generation:
        out.write(piece)
        out.flush()
    print(file=out, flush=True)
    answer = generation.answer
    if answer and answer.cut:
        print(
            _("[cut by the budget of {tokens} tokens: raise --max-new-tokens]").format(
                tokens=options["max_new_tokens"]
            ),
            file=sys.stderr,
        )
    return answer.text if answer else ""


def _repl(out: IO[str], student, options) -> int:
    interactive = sys.stdin.isatty()
    if interactive:
        print(_("chat with the student; /reset forgets the history, /quit leaves"), file=out,
              flush=True)  # fmt: skip
    history: list[dict[str, str]] = []
    while True:
        if interactive:
            print(_("you> "), end="", file=out, flush=True)
        line = sys.stdin.readline()
        if not line or line.strip() == "/quit":
            return 0
        text = line.strip()
        if not text:
            continue
        if text == "/reset":
            history.clear()
            print(_("(history cleared)"), file=out, flush=True)
            continue
        if text.startswith("/"):
            print(_("unknown command {text}: /reset or /quit").format(text=text), file=sys.stderr)
            continue
        history.append({"role": "user", "content": text})
        answer = _print_stream(out, student, history, **options)
        history.append({"role": "assistant", "content": answer})
