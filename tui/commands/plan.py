"""``stillroom plan``: print the default plan, or check a plan file."""

from __future__ import annotations

import argparse

from engine.i18n import _
from engine.plan import Plan, load_plan


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help=_("check a plan file, or print every key with its default"),
        description=_(
            "Check a plan file and print it in full (defaults filled in), or print the "
            "default plan to start from: `stillroom plan --defaults > plan.toml`."
        ),
    )
    parser.add_argument("path", nargs="?", help=_("plan file (TOML) to check"))
    parser.add_argument("--defaults", action="store_true", help=_("print the default plan"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.defaults or not args.path:
        print(Plan().to_toml(), end="")
        return 0
    plan = load_plan(args.path)
    print(plan.to_toml(), end="")
    return 0
