"""The command line and the TUI start fast: no ML library is imported to build them."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "datasets", "trl", "peft", "unsloth", "bitsandbytes", "openai")

PROBE = f"""
import sys
from tui.cli import build_parser
build_parser().format_help()
import engine.plan, engine.events, engine.data.types
print(",".join(m for m in {HEAVY!r} if m in sys.modules))
"""


def test_building_the_cli_imports_no_ml_library():
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "", f"imported at startup: {result.stdout.strip()}"
