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
from engine.i18n import LANGUAGES, N_, _, choose_language, use_language

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


# argparse's own words, which it translates through gettext: listed so the catalog has them.
ARGPARSE_MESSAGES = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("show program's version number and exit"),
    N_("the following arguments are required: %s"),
    N_("unrecognized arguments: %s"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("expected one argument"),
    N_("invalid %(type)s value: %(value)r"),
    N_("not allowed with argument %s"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
)

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
        description=_(
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
        "--lang",
        choices=tuple(LANGUAGES),
        help=_(
            "the language Stillroom speaks, anywhere on the command line "
            "(default: $STILLROOM_LANG, else the wizard's remembered choice, else the locale)"
        ),
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


def take_language(argv: list[str]) -> tuple[str | None, list[str]]:
    """``--lang X`` / ``--lang=X`` from anywhere in ``argv``, and the arguments without it.

    The language must be known before the parser is built (its help is translated), and
    users put the flag after the subcommand as often as before it.
    """
    rest, lang, args = [], None, iter(argv)
    for arg in args:
        if arg == "--":
            rest += [arg, *args]
        elif arg == "--lang":
            lang = next(args, "")
        elif arg.startswith("--lang="):
            lang = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if lang is not None and lang not in LANGUAGES:
        rest = ["--lang", lang, *rest]  # left for the parser to refuse, with the choices
    return lang, rest


def main(argv: list[str] | None = None) -> int:
    from engine.settings import load_settings

    lang, argv = take_language(sys.argv[1:] if argv is None else argv)
    use_language(choose_language(lang, remembered=load_settings().get("lang")))
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
