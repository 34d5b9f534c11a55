"""The evaluation and export dialogs against a copy of the trained facts run, each child real."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from textual.widget import Widget
from textual.widgets import Input, Static

from engine.evaluate import metric_lines
from engine.train.dataset import load_eval_split
from tui.screens.results import EvalScreen, ExportScreen, parity_verdict
from tui.widgets.child_log import ChildLog

from .conftest import SIZE
from .scenes import until

pytestmark = pytest.mark.anyio
RUN = Path("runs/t-facts")


@pytest.fixture
def run(project: Path, facts_run: Path) -> Path:
    """The facts run copied into the project as runs/t-facts: the shared run stays untouched."""
    shutil.copytree(facts_run, project / RUN, ignore=shutil.ignore_patterns("eval", "export"))
    return RUN


def status(screen) -> str:
    return str(screen.query_one("#results-status", Static).render())


def painted(widget: Widget) -> str:
    """The text a widget paints, line by line, as the user sees it."""
    return "\n".join(strip.text for strip in widget.render_lines(widget.size.region))


async def run_child(pilot, screen, timeout_s: float = 240) -> None:
    """ctrl+r, then wait until the child has exited and the screen has taken its result."""
    await pilot.press("ctrl+r")
    assert screen.running
    await until(pilot, lambda: not screen.running, timeout_s)
    await pilot.pause()


async def test_evaluation_runs_in_a_child_and_the_student_beats_the_base(
    make_app, run, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # retention's base answers
    distinct = {c.messages[-2]["content"] for c in load_eval_split(run)}
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = EvalScreen(run)
        app.push_screen(screen)
        await pilot.pause()
        assert screen.report is None and "No evaluation yet" in status(screen)
        screen.query_one("#eval-tokens", Input).value = "40"
        await run_child(pilot, screen)
        assert "✓ evaluated" in status(screen) and "runs/t-facts/eval/report.md" in status(screen)
        assert screen.report is not None and screen.report["rows"] == len(distinct)
        label, base, student = metric_lines(screen.report)[0]
        assert label == "token F1 vs teacher" and float(student) > float(base)
        table = next(line for line in painted(screen.query_one("#eval-summary")).splitlines()
                     if "token F1 vs teacher" in line)  # fmt: skip
        assert table.split()[-2:] == [base, student]
        kept = screen.report["retention"]
        headline = painted(screen.query_one("#eval-summary")).splitlines()[0]
        assert headline.startswith(f"Learned {screen.report['learned']['items']} of {len(distinct)}"
                                   f", kept {kept['kept']} of {kept['prompts']}")  # fmt: skip
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, EvalScreen)


async def test_a_failed_evaluation_shows_the_message_and_hint_not_a_traceback(make_app, project):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = EvalScreen(Path("runs/missing"))
        app.push_screen(screen)
        await pilot.pause()
        await run_child(pilot, screen, 60)
        assert status(screen) == "✗ no run 'runs/missing' in runs/\n→ `stillroom runs` lists them."
        assert "Traceback" not in "\n".join(line.text for line in screen.query_one(ChildLog).lines)


async def test_export_adapter_writes_the_folder_and_says_where(make_app, run):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = ExportScreen(run)
        app.push_screen(screen)
        await pilot.pause()
        await run_child(pilot, screen)
        assert (run / "export/adapter/adapter_config.json").is_file()
        assert "✓ written to runs/t-facts/export/adapter" in status(screen)
        assert "No parity check" in status(screen)


async def test_an_export_of_another_format_is_replaced_only_on_a_second_ctrl_r(make_app, run):
    """What --force does on the command line: a folder holding a Stillroom adapter export is
    refused for a merged one, with the way to replace it; ctrl+r again replaces it."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = ExportScreen(run)
        app.push_screen(screen)
        await pilot.pause()
        screen.query_one("#export-out", Input).value = "exports/student"
        await run_child(pilot, screen)
        assert json.loads(Path("exports/student/stillroom-export.json").read_text())["format"] == (
            "adapter"
        )
        await pilot.press("down", "enter")  # merged
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not screen.running
        assert "holds a Stillroom adapter export, not merged" in status(screen)
        assert "Press ctrl+r again to replace that export" in status(screen)
        assert Path("exports/student/adapter_config.json").is_file()
        await run_child(pilot, screen)
        assert "✓ written to exports/student" in status(screen), status(screen)
        marker = json.loads(Path("exports/student/stillroom-export.json").read_text())
        assert (
            marker["format"] == "merged"
            and not Path("exports/student/adapter_config.json").exists()
        )


async def test_gguf_without_a_converter_shows_how_to_install_it_and_leaves_nothing(
    make_app, run, monkeypatch
):
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = ExportScreen(run)
        app.push_screen(screen)
        await pilot.pause()
        await pilot.press("down", "down", "enter")
        assert screen.query_one("#export-out", Input).placeholder == "runs/t-facts/export/gguf"
        await run_child(pilot, screen, 120)
        assert "✗ no GGUF converter found" in status(screen)
        assert "LLAMA_CPP_DIR" in status(screen)
        export = run / "export"
        assert not export.exists() or not [p for p in export.iterdir() if "gguf" in p.name]


def test_an_export_that_answers_differently_is_flagged(tmp_path):
    items = [{"prompt": "q", "base_plus_adapter": "a", "exported": "b", "same": False}] * 3
    (tmp_path / "parity.json").write_text(json.dumps({"differing": 2, "note": "", "items": items}))
    verdict, flagged = parity_verdict(tmp_path)
    assert flagged and verdict.startswith("✗ PARITY FAILED: 2 of 3 answers differ")
    (tmp_path / "parity.json").write_text(json.dumps({"differing": 0, "note": "", "items": items}))
    assert parity_verdict(tmp_path) == (
        "Parity: the same greedy answers as base + adapter on 3 prompts.",
        False,
    )
