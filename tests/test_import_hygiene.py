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


FRAME_PROBE = f"""
import asyncio, sys, tempfile
from pathlib import Path
from tui.app import StillroomApp

async def first_frame():
    draft = Path(tempfile.mkdtemp()) / "plan.toml"
    app = StillroomApp(draft, gpu_probe=lambda: None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()

asyncio.run(first_frame())
print(",".join(m for m in {HEAVY!r} if m in sys.modules))
"""


def test_the_wizard_paints_its_first_frame_without_ml_libraries():
    result = subprocess.run(
        [sys.executable, "-c", FRAME_PROBE], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported by the first frame: {result.stdout.strip()}"
