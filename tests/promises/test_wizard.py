"""What the wizard promises: it never replaces the user's plan file, never ends on an error, and
says what went wrong (and how to fix it) on the step the user is on. The real app, by Pilot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.plan import Plan
from tests.promises.permissions import permissions_apply
from tests.teacher_server import TeacherServer, answer_for
from tests.tui.scenes import until
from tui.app import StillroomApp
from tui.draft import read_draft
from tui.screens.data import DataScreen
from tui.screens.results import ExportScreen
from tui.screens.teacher import TeacherScreen
from tui.screens.welcome import WelcomeScreen

pytestmark = pytest.mark.anyio
SIZE = (80, 24)
DRAFT = Path("stillroom-plan.toml")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the working directory, offline."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def wizard() -> StillroomApp:
    """The wizard on ./stillroom-plan.toml, on a machine without a GPU."""
    return StillroomApp(DRAFT, gpu_probe=lambda: None, gpu_sampler=lambda pids: None)


def said(app: StillroomApp, *words: str) -> bool:
    """Whether one notification holds all ``words``."""
    return any(all(w in f"{n.title}\n{n.message}" for w in words) for n in app._notifications)


def backups(folder: Path) -> list[Path]:
    return sorted(folder.glob("stillroom-plan.*.bak.toml"))


async def test_a_draft_with_a_typo_is_kept_as_a_dated_backup(project):
    """The wizard never overwrites a plan file it could not load: at the first save it is
    renamed to a dated backup, and the wizard says where."""
    mine = '[dataset]\nsource = "my-data.jsonl"\n[training]\nbach_size = 8\n'
    DRAFT.write_text(mine)
    app = wizard()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert said(app, "bach_size", "Starting from the defaults", "never overwritten")
        await pilot.press("n")  # a new plan: the first save
        await pilot.pause()
        assert isinstance(app.screen, TeacherScreen)
        [backup] = backups(project)
        assert said(app, "Your plan is kept", backup.name)
    assert backup.read_text() == mine
    assert "bach_size" not in DRAFT.read_text()


async def test_a_plan_you_wrote_keeps_its_comments_and_keys_when_the_wizard_edits_it(project):
    """Editing a plan file in the wizard rewrites only what changed: your comments, your
    layout and the keys you wrote at their defaults stay; a key you unset goes. A new plan
    replaces the file."""
    mine = (
        "# Support bot, trained nightly\n"
        "[dataset]\n"
        'source = "my-data.jsonl"  # exported from the helpdesk\n'
        "[training]\n"
        "# the notebook's batch\n"
        "batch_size = 2\n"
        "rebatch = true  # as fast as the card allows\n"
        "max_steps = 10  # a smoke test first\n"
    )
    DRAFT.write_text(mine)
    app = wizard()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.open_plan(str(DRAFT)) is None  # what Open plan does with the file picked
        await pilot.pause()
        assert app.change("training", max_steps=None, epochs=2.0) is None
        assert app.change("lora", r=32) is None
        kept = DRAFT.read_text()
        for line in ("# Support bot, trained nightly", "# exported from the helpdesk",
                     "# the notebook's batch", "batch_size = 2",
                     "rebatch = true  # as fast as the card allows"):  # fmt: skip
            assert line in kept, kept
        assert "max_steps" not in kept and "a smoke test first" not in kept
        plan, step = read_draft(DRAFT)
        assert (plan.training.epochs, plan.training.max_steps, plan.lora.r) == (2.0, None, 32)
        assert plan.dataset.source == "my-data.jsonl" and step == app.step

        app.start_plan(Plan(), new=True)  # what New plan does
        await pilot.pause()
    assert "Support bot" not in DRAFT.read_text()
    assert read_draft(DRAFT)[0] == Plan()


async def test_a_draft_you_cannot_read_is_said_and_kept(project):
    """A draft the user cannot read (chmod 000) is a message, not a crash, and is kept."""
    DRAFT.write_text('[output]\nname = "mine"\n')
    DRAFT.chmod(0)
    with permissions_apply():
        app = wizard()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert said(app, "permission denied", "chmod u+r")
            await pilot.press("n")
            await pilot.pause()
            assert app.is_running and isinstance(app.screen, TeacherScreen)
    [backup] = backups(project)
    assert backup.read_text() == '[output]\nname = "mine"\n'


async def test_a_draft_nested_thousands_deep_is_said(project):
    """A draft nested thousands deep is a message, not a RecursionError."""
    DRAFT.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    app = wizard()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, WelcomeScreen)
        assert said(app, "nested deeper than")


async def test_a_read_only_folder_is_said_once_and_the_wizard_stays_open(project):
    """In a read-only folder the wizard says its draft cannot be saved and how to fix it,
    and goes on working instead of crashing on the first key."""
    project.chmod(0o555)
    try:
        with permissions_apply():
            app = wizard()
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("n")
                await pilot.pause()
                assert app.is_running and isinstance(app.screen, TeacherScreen)
                assert said(app, "Not saved", "cannot write", "permission denied", "--plan")
                await pilot.press("ctrl+n", "ctrl+u", *"mine.jsonl")
                await pilot.pause()
                assert isinstance(app.screen, DataScreen)
                assert app.plan.dataset.source == "mine.jsonl"
                assert sum("cannot write" in n.message for n in app._notifications) == 1
    finally:
        project.chmod(0o755)
    assert not DRAFT.exists()


async def test_a_step_whose_work_fails_says_so_and_stays_usable(project):
    """A worker that raises never ends the wizard: the error is shown on the step, and the
    step goes on working (here the Data step reading a file nested thousands deep)."""
    Path("deep.jsonl").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    Path("good.jsonl").write_text('{"instruction": "Hi?", "input": "", "output": "Hello."}\n' * 8)
    app = wizard()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n", "ctrl+n", "ctrl+u", *"deep.jsonl", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, DataScreen)
        summary = app.screen.query_one("#summary")
        assert summary.has_class("-error") or any(n.severity == "error" for n in app._notifications)
        await pilot.press("ctrl+u", *"good.jsonl", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "alpaca" in str(summary.render())


async def test_quitting_while_the_teacher_writes_keeps_every_answer_it_was_writing(
    project, monkeypatch
):
    """Quitting the wizard mid-generation stops the generation child once the answers in
    flight are saved: every answer the teacher was paid for is in the output file."""
    Path("prompts.txt").write_text("".join(f"Explain topic {i}\n" for i in range(10)))
    with TeacherServer(latency_s=0.3) as server:
        monkeypatch.setenv("STILLROOM_PROMISE_KEY", server.api_key)
        app = wizard()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("n")
            await pilot.pause()
            app.change("teacher", provider="local", base_url=server.base_url, model="teacher-1",
                       api_key_env="STILLROOM_PROMISE_KEY", prompts="prompts.txt",
                       concurrency=2)  # fmt: skip
            await pilot.press("ctrl+r")
            step = app.screen
            await until(pilot, lambda: step.progress is not None and step.progress.done >= 1)
            child = step.child.process
        assert child.wait(timeout=30) == 0  # stopped, not killed
        saved = [json.loads(line)["messages"][-1]["content"] for line in open("teacher.jsonl")]
        assert sorted(saved) == sorted(answer_for(p) for p in server.answered())
        assert 0 < len(saved) < 10


async def test_the_export_dialog_refuses_a_folder_it_did_not_write(project, facts_run):
    """The wizard's export dialog refuses the working folder (the same check as the command),
    says why, and stays open; nothing is deleted."""
    run = Path("runs/t-facts")
    shutil.copytree(facts_run, run, ignore=shutil.ignore_patterns("eval", "export"))
    Path("notes.txt").write_text("mine\n")
    app = wizard()
    async with app.run_test(size=SIZE) as pilot:
        screen = ExportScreen(run)
        app.push_screen(screen)
        await pilot.pause()
        await pilot.press("tab", *".", "ctrl+r")
        await pilot.pause()
        status = str(screen.query_one("#results-status").render())
        assert "will not export to .: it is the working folder" in status
        assert app.is_running and app.screen is screen and not screen.running
    assert Path("notes.txt").read_text() == "mine\n" and (run / "adapter").is_dir()
