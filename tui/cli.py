"""The ``stillroom`` command.

Each subcommand lives in its own module under ``tui.commands`` and exposes
``register(subparsers)``; the module is imported only to build the parser, and
anything heavy it needs is imported inside the function that runs it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from engine.errors import UserError

# Listed in the order `--help` shows them. A subcommand appears here only once it works.
COMMANDS = [
    "demo",
    "plan",
    "doctor",
    "inspect",
    "generate",
    "train",
    "runs",
    "attach",
    "cancel",
    "chat",
    "eval",
    "export",
]


# The wizard draws a full screen and reads keys: without a terminal it would wait forever.
NO_TERMINAL = (
    "stillroom: the wizard needs a terminal (stdin and stdout are not one); headless, use "
    "`stillroom --help`, `stillroom demo --no-wizard` or `stillroom train PLAN`."
)


def _version() -> str:
    try:
        return version("stillroom")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stillroom",
        description=(
            "Distil a large teacher LLM into a small student model on one GPU.\n"
            "Run a subcommand below; `stillroom COMMAND --help` explains each."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"stillroom {_version()}")
    parser.add_argument(
        "--plan",
        dest="wizard_plan",
        metavar="PATH",
        help="the wizard's draft plan (default: ./stillroom-plan.toml)",
    )
    parser.add_argument(
        "--theme",
        choices=("dark", "light"),
        help="the wizard's colours; both are readable on any terminal "
        "(default: $STILLROOM_THEME, else dark)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"tui.commands.{name}").register(subparsers)
    return parser


def wizard_theme(choice: str | None) -> str:
    """``--theme`` when given, else ``$STILLROOM_THEME``, else dark."""
    theme = choice or os.environ.get("STILLROOM_THEME", "dark")
    if theme not in ("dark", "light"):
        raise UserError(
            f"STILLROOM_THEME={theme!r} is not a theme",
            hint="Set it to dark or light, or unset it.",
        )
    return theme


def report_user_error(error: UserError) -> None:
    """Print a user mistake as a message and a hint, never a traceback."""
    print(f"stillroom: {error}", file=sys.stderr)
    if error.hint:
        print(f"  hint: {error.hint}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if not getattr(args, "func", None):
            if not (sys.stdin.isatty() and sys.stdout.isatty()):
                print(NO_TERMINAL, file=sys.stderr)
                return 2
            from tui.app import run_wizard

            return run_wizard(args.wizard_plan, wizard_theme(args.theme))
        return int(args.func(args) or 0)
    except UserError as error:
        report_user_error(error)
        return 2
    except KeyboardInterrupt:
        print("stillroom: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
