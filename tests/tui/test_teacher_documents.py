"""The Teacher step's third source: a folder of documents, previewed, generated, paused, resumed."""

from __future__ import annotations

import json

import pytest

from engine.plan import load_plan
from tests.documents import write_folder
from tests.teacher_server import TeacherServer
from tui.screens.file_picker import FilePicker

from .conftest import SIZE
from .scenes import until
from .test_file_picker import browse, listed

pytestmark = pytest.mark.anyio
KEY_VAR = "STILLROOM_TUI_TEST_KEY"


def text_of(pilot, selector: str) -> str:
    return str(pilot.app.screen.query_one(selector).render())


def answering(pilot) -> bool:
    """The answers stage has written at least one answer (the questions stage counts chunks)."""
    line = text_of(pilot, "#progress")
    return " done · " in line and not line.startswith("0/")


async def test_a_picked_folder_is_previewed_with_headings_then_generated_with_sources(
    make_app, project, monkeypatch
):
    write_folder(project / "docs")
    with TeacherServer() as server:
        monkeypatch.setenv(KEY_VAR, server.api_key)
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("n")
            await pilot.pause()
            app.change("teacher", provider="local", base_url=server.base_url, model="teacher-1",
                       api_key_env=KEY_VAR, output="out.jsonl", questions_per_chunk=2,
                       concurrency=1)  # fmt: skip
            app.screen.show_plan()

            tree = await browse(pilot, "knob-teacher-documents")
            assert listed(tree)[0] == "docs"
            await pilot.press("ctrl+o")  # the folder under the cursor
            await until(pilot, lambda: not isinstance(app.screen, FilePicker))
            assert app.screen.query_one("#knob-teacher-documents Input").value == "docs"
            assert load_plan("stillroom-plan.toml").teacher.documents == ["docs"]
            await until(pilot, lambda: "▸" in text_of(pilot, "#documents-preview"))
            preview = text_of(pilot, "#documents-preview")
            assert "5 documents" in preview and "scanned PDF" in preview
            assert "▸ Grinder Guide > Burrs > Replacement: The grinder burrs" in preview
            assert "▸ Espresso Machine Manual > Operation (p. 1): The boiler runs" in preview

            server.latency_s = 0.1  # slow enough to pause among the answers
            await pilot.press("ctrl+r")
            await until(pilot, lambda: answering(pilot))
            await pilot.press("ctrl+s")
            await until(pilot, lambda: text_of(pilot, "#progress").startswith("Paused"))
            paused = len(open(project / "out.jsonl").readlines())
            server.latency_s = 0.0
            await pilot.press("ctrl+r")
            await until(pilot, lambda: text_of(pilot, "#progress").startswith("Done"))
    records = [json.loads(line) for line in open(project / "out.jsonl")]
    assert 0 < paused < len(records)
    assert all(r["meta"]["source"]["file"].startswith("docs/") for r in records)
    keys = [(r["meta"]["source"]["chunk_hash"], r["messages"][1]["content"]) for r in records]
    assert len(keys) == len(set(keys))  # paused and resumed: each question answered once
    assert load_plan("stillroom-plan.toml").dataset.source == "out.jsonl"
