"""The file picker: opened from a path field with ctrl+f, it fills the field and the plan."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from engine.plan import load_plan
from tui.app import StillroomApp
from tui.screens.file_picker import DataTree, FilePicker

from .conftest import SIZE, SIZES_AND_LANGS, T4, no_gpu
from .scenes import prepare, until

pytestmark = pytest.mark.anyio


@pytest.fixture
def files(project: Path) -> Path:
    """answers.jsonl and prompts.txt, data/more.csv, and files the picker should leave out."""
    prepare(project)
    (project / "data").mkdir()
    (project / "data" / "more.csv").write_text("prompt,response\nhi,hello\n")
    (project / "notes.md").write_text("not data\n")
    (project / ".hidden.jsonl").write_text("{}\n")
    return project


async def browse(pilot: Pilot, field: str) -> DataTree:
    """ctrl+f from ``field`` (a knob's id); waits until the project folder is listed."""
    pilot.app.screen.query_one(f"#{field} Input").focus()
    await pilot.pause()
    await pilot.press("ctrl+f")
    await until(pilot, lambda: isinstance(pilot.app.screen, FilePicker))
    tree = pilot.app.screen.query_one(DataTree)
    await until(pilot, lambda: tree.root.children)
    await pilot.pause()
    return tree


def listed(tree: DataTree) -> list[str]:
    return [str(tree.get_node_at_line(line).label) for line in range(tree.last_line + 1)]


async def test_picks_a_file_into_the_data_source_and_reads_it(make_app, files):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        app.switch_mode("data")
        await pilot.pause()
        tree = await browse(pilot, "knob-dataset-source")
        assert listed(tree) == ["data", "answers.jsonl", "prompts.txt"]

        await pilot.press("down", "enter")
        await until(pilot, lambda: not isinstance(app.screen, FilePicker))
        assert app.screen.query_one("#knob-dataset-source Input").value == "answers.jsonl"
        await until(pilot, lambda: "5 rows" in str(app.screen.query_one("#summary").render()))
    assert load_plan("stillroom-plan.toml").dataset.source == "answers.jsonl"


async def test_picks_a_file_in_a_folder_into_the_prompt_file(make_app, files):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        await browse(pilot, "knob-teacher-prompts")
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, FilePicker)
        assert app.plan.teacher.prompts == ""

        tree = await browse(pilot, "knob-teacher-prompts")
        await pilot.press("enter")  # opens data/
        await until(pilot, lambda: "more.csv" in listed(tree))
        await pilot.press("down", "enter")
        await until(pilot, lambda: not isinstance(app.screen, FilePicker))
    assert load_plan("stillroom-plan.toml").teacher.prompts == "data/more.csv"


async def test_backspace_goes_up_and_says_where(make_app, files):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        await browse(pilot, "knob-teacher-prompts")
        where = app.screen.query_one("#where")
        assert str(where.render()) == "Pick a file in the project folder"
        await pilot.press("backspace")
        await pilot.pause()
        assert str(where.render()) == f"Pick a file in {files.resolve().parent}"


async def picker_open(pilot: Pilot) -> None:
    await pilot.press("n")
    await pilot.pause()
    pilot.app.clear_notifications()  # the "New plan" toast, which would show through
    await browse(pilot, "knob-teacher-prompts")


@SIZES_AND_LANGS
def test_snapshot(snap_compare, files, size, lang, speaking):
    """You should see, over the dimmed Teacher step, a box titled "Pick a file in the project
    folder" listing the data folder, answers.jsonl and prompts.txt (no notes.md, no hidden
    files), a hint that Enter picks, and esc Cancel and ⌫ Parent folder in the footer."""
    app = StillroomApp(Path("stillroom-plan.toml"), gpu_probe=lambda: T4, gpu_sampler=no_gpu)
    assert snap_compare(app, terminal_size=size, run_before=picker_open)
