"""What Stillroom promises about runs, each checked against real training children.

Every test drives the real CLI (or the real wizard through Pilot) on runs the
tiny student really trained; damaged runs are copies of such a run, broken the
way disks and people break files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from engine import events as ev
from engine import runs
from engine.plan import load_plan
from tests.engine.training import (
    REPO,
    events_of,
    run_dir_from,
    stillroom,
    wait_for,
    write_facts,
    write_plan,
)
from tests.faults import fault_env

STEPS = 12
NAN_AT = 3


@pytest.fixture(scope="module")
def plan_for(tiny_model_dir: Path, tmp_path_factory) -> Callable[..., Path]:
    """A plan file of ``STEPS`` steps on the facts in a fresh folder (training keys override)."""

    def make(**training) -> Path:
        folder = tmp_path_factory.mktemp("plan")
        settings = {"max_steps": STEPS, "save_steps": 4, **training}
        return write_plan(folder, tiny_model_dir, write_facts(folder), **settings)

    return make


def ended(run_dir: Path) -> ev.Event:
    """The run's ending, once its trainer has also exited (a resume waits for that)."""
    end = wait_for(run_dir, lambda e: False)
    deadline = time.monotonic() + 120
    while runs.child_alive(run_dir):
        assert time.monotonic() < deadline, "the trainer did not exit after its ending"
        time.sleep(0.1)
    return end


@pytest.fixture(scope="module")
def failed_run(plan_for) -> Path:
    """A run whose loss went NaN at step 3: it ended with an error, before any checkpoint."""
    run_dir = runs.create_run(load_plan(plan_for()))
    runs.start(run_dir, env=fault_env(run_dir.parent / "fault", "nan", NAN_AT))
    end = ended(run_dir)
    assert isinstance(end, ev.Error) and end.kind == "nan_loss", end
    return run_dir


@pytest.fixture(scope="module")
def finished_run(plan_for) -> Path:
    """A run trained to its planned end through `stillroom train PLAN`."""
    result = stillroom("train", str(plan_for(max_steps=8)))
    assert result.returncode == 0, result.stdout + result.stderr
    return run_dir_from(result.stdout)


def copy_run(run_dir: Path, runs_dir: Path, name: str | None = None) -> Path:
    """A copy of a run folder (as a user's `cp -r` makes one) under ``runs_dir``."""
    copy = runs_dir / (name or run_dir.name)
    shutil.copytree(run_dir, copy)
    return copy


def trainers_of(run_dir: Path) -> list[psutil.Process]:
    """Every live `python -m engine train RUN_DIR` process of this folder."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        args = process.info["cmdline"] or []
        if "engine" in args and "train" in args and str(run_dir) in args:
            found.append(process)
    return found


@pytest.fixture
def no_stray_trainers() -> Iterator[list[Path]]:
    """Run folders whose trainers a test leaves behind are stopped at its end, pass or fail."""
    folders: list[Path] = []
    yield folders
    for folder in folders:
        for process in trainers_of(folder):
            process.kill()


# Resume


def test_resume_follows_only_its_own_attempt(failed_run, tmp_path):
    """`train --resume` follows the new attempt to its own end; the old ending is history."""
    run_dir = copy_run(failed_run, tmp_path)
    result = stillroom("train", "--resume", str(run_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    history = f"attempt 1 (history): reached step {NAN_AT}/{STEPS}, loss nan; failed (nan_loss)"
    assert history in out
    assert out.index(history) < out.index("step 1/12")  # history first, then the live steps
    assert out.count(f"step {NAN_AT}/{STEPS} ") == 1  # the old steps are not replayed
    assert f"finished {STEPS} steps" in out
    assert "error (nan_loss)" not in out
    starts = events_of(run_dir, ev.Started)
    assert [s.attempt for s in starts] == [1, 2]
    assert runs.status(run_dir).state == "finished"


def test_a_run_from_before_attempts_were_numbered_still_reads(failed_run, finished_run, tmp_path):
    """A run folder written by an older Stillroom (no attempt numbers) lists and follows as
    before: its attempts are numbered in order."""
    run_dir = copy_run(finished_run, tmp_path)

    def unnumbered(path: Path) -> list[str]:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        return [json.dumps({k: v for k, v in r.items() if k != "attempt"}) for r in records]

    lines = unnumbered(failed_run / "events.jsonl") + unnumbered(run_dir / "events.jsonl")
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n")
    summary = json.loads((run_dir / "summary.json").read_text())
    del summary["attempt"]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    listed = stillroom("runs", "--json", "--runs-dir", str(tmp_path))
    (run,) = json.loads(listed.stdout)
    assert (run["state"], run["attempt"], run["step"]) == ("finished", 2, 8)
    shown = stillroom("attach", str(run_dir))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"attempt 1 (history): reached step {NAN_AT}/{STEPS}" in shown.stdout
    assert "finished 8 steps" in shown.stdout


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def wizard(tmp_path, monkeypatch):
    """The wizard in ``tmp_path`` (its runs in ./runs), on a machine without an NVIDIA GPU."""
    from tui.app import StillroomApp

    monkeypatch.chdir(tmp_path)
    return StillroomApp(
        Path("stillroom-plan.toml"),
        gpu_probe=lambda: (15360.0, "Tesla T4"),
        gpu_sampler=lambda own_pids: None,
        runs_dir="runs",
    )


@pytest.mark.anyio
async def test_the_train_screen_shows_a_resumed_runs_old_attempts_as_history(
    failed_run, tmp_path, wizard
):
    """The wizard re-attached to a resumed run shows the new attempt's progress and ending;
    the old attempt is one line of history in the log, its error never the run's state."""
    from tests.tui.scenes import until
    from tui.screens.train import TrainScreen
    from tui.widgets.log_tail import LogTail

    run_dir = copy_run(failed_run, tmp_path / "runs")
    resumed = stillroom("train", "--resume", str(run_dir), "--detach")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    app = wizard
    async with app.run_test(size=(100, 30)) as pilot:
        app.attach_run(run_dir)
        await until(pilot, lambda: isinstance(app.screen, TrainScreen))
        screen = app.screen
        seen_states = set()

        def done() -> bool:
            seen_states.add(screen.state)
            return screen.ending is not None

        await until(pilot, done, timeout_s=240)
        log = "\n".join(line.text for line in screen.query_one(LogTail).lines)
        assert screen.state == "finished", (screen.state, log)
        assert "failed" not in seen_states
        assert "attempt 1 (history): reached step 3/12" in log
        assert screen.last_step.step == STEPS


# One trainer per run folder


def test_one_trainer_per_run_folder(failed_run, tmp_path, no_stray_trainers):
    """Resumes started at once on one run: one trains; the others name the process that
    holds the folder and exit non-zero."""
    run_dir = copy_run(failed_run, tmp_path)
    no_stray_trainers.append(run_dir)
    command = [sys.executable, "-m", "tui.cli", "train", "--resume", str(run_dir), "--detach"]
    launches = [
        subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    results = [(*p.communicate(timeout=240), p.returncode) for p in launches]
    results = [(code, out, err) for out, err, code in results]
    winners = [r for r in results if r[0] == 0]
    losers = [r for r in results if r[0] != 0]
    assert len(winners) == 1, results
    trainer = runs.read_pid(run_dir)
    assert [p.pid for p in trainers_of(run_dir)] == [trainer]
    for _, _, err in losers:
        assert f"is being trained by process {trainer} (started " in err, err
        assert "Traceback" not in err
    runs.cancel(run_dir)
    assert ended(run_dir).type in ev.TERMINAL


# Cancel


def stranger() -> subprocess.Popen[bytes]:
    """A process that is no run's trainer; a signal would end it."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])


@pytest.mark.parametrize(
    "case",
    ["a finished run whose pid now names another program", "a killed run with no start time"],
)
def test_cancel_never_signals_a_process_that_is_not_the_runs_trainer(
    case, finished_run, failed_run, tmp_path
):
    """`cancel` signals only a live trainer of this very run; otherwise it says there is
    nothing to cancel and leaves every process alone."""
    other = stranger()
    try:
        if case.startswith("a finished run"):
            run_dir = copy_run(finished_run, tmp_path)
            runs.write_pid(run_dir, other.pid)  # its real pid and start time: a recycled pid
        else:
            run_dir = copy_run(failed_run, tmp_path)
            lines = (run_dir / "events.jsonl").read_text().splitlines(keepends=True)
            (run_dir / "events.jsonl").write_text("".join(lines[:-1]))  # killed: no ending
            (run_dir / "summary.json").unlink()
            (run_dir / "pid").write_text(f"{other.pid} 0\n")  # start time unknown
        result = stillroom("cancel", str(run_dir))
        assert result.returncode == 2, result.stdout + result.stderr
        assert "nothing to cancel" in result.stderr
        assert other.poll() is None, "the other process was signalled"
        assert not (run_dir / runs.CANCEL_FILE).exists()
    finally:
        other.kill()
        other.wait()


def test_cancel_on_a_copied_live_run_leaves_the_original_training(
    plan_for, tmp_path, no_stray_trainers
):
    """A copy of a live run folder names the original's trainer in its pid file; cancelling
    the copy must not stop the original."""
    plan = plan_for(max_steps=100_000, save_steps=100_000)  # no checkpoint rotates mid-copy
    result = stillroom("train", str(plan), "--detach")
    original = run_dir_from(result.stdout)
    no_stray_trainers.append(original)
    first = wait_for(original, lambda e: isinstance(e, ev.Step))
    copy = copy_run(original, tmp_path, "copy-of-live-run")
    cancelled = stillroom("cancel", str(copy))
    assert cancelled.returncode == 2, cancelled.stdout + cancelled.stderr
    assert "nothing to cancel" in cancelled.stderr
    later = wait_for(original, lambda e: isinstance(e, ev.Step) and e.step >= first.step + 3)
    assert isinstance(later, ev.Step), later  # still training: no cancel reached it
    assert stillroom("cancel", str(original)).returncode == 0
    assert isinstance(ended(original), ev.Cancelled)


# Damaged events.jsonl


def cut_in_a_character(path: Path) -> None:
    """A log line cut inside the two bytes of 'é', then more lines after it."""
    lines = path.read_bytes().splitlines(keepends=True)
    torn = ev.encode(ev.Log(line="café au lait")).encode()
    lines.insert(2, torn[: torn.index("é".encode()) + 1] + b"\n")
    path.write_bytes(b"".join(lines))


def random_bytes(path: Path) -> None:
    import random

    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(3, random.Random(11).randbytes(300).replace(b"\n", b"") + b"\n")
    path.write_bytes(b"".join(lines))


def a_loss_that_is_not_a_number(path: Path) -> None:
    """The last step's loss replaced by text (what `runs` prints as the run's loss)."""
    lines = path.read_text().splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if '"type": "step"' in line)
    record = json.loads(lines[last])
    record["loss"] = "not a number"
    lines[last] = json.dumps(record) + "\n"
    path.write_text("".join(lines))


def last_line_cut(path: Path) -> None:
    """The `finished` line cut halfway (the disk filled, the machine lost power)."""
    data = path.read_bytes().rstrip(b"\n")
    start = data.rindex(b"\n") + 1
    path.write_bytes(data[: start + (len(data) - start) // 2])


def a_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


DAMAGE = {
    "cut-in-a-character": cut_in_a_character,
    "random-bytes": random_bytes,
    "loss-not-a-number": a_loss_that_is_not_a_number,
    "last-line-cut": last_line_cut,
    "a-folder": a_folder,
}


@pytest.fixture(scope="module")
def damaged_runs(finished_run, tmp_path_factory) -> Path:
    """A runs folder: the finished run intact, and one copy per kind of damage."""
    root = tmp_path_factory.mktemp("damaged") / "runs"
    copy_run(finished_run, root, "intact")
    for name, damage in DAMAGE.items():
        damage(copy_run(finished_run, root, name) / "events.jsonl")
    return root


def test_damaged_events_never_break_the_runs_list(damaged_runs):
    """A damaged event line is skipped and counted; a run whose events cannot be read is
    listed as unreadable with the reason; every other run is listed as before."""
    result = stillroom("runs", "--json", "--runs-dir", str(damaged_runs))
    assert result.returncode == 0, result.stderr
    listed = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(listed) == {"intact", *DAMAGE}
    intact = listed.pop("intact")
    assert (intact["state"], intact["step"], intact["damaged_lines"]) == ("finished", 8, 0)
    unreadable = listed.pop("a-folder")
    assert unreadable["state"] == "unreadable"
    assert "events.jsonl cannot be read: Is a directory" in unreadable["message"]
    for name, run in listed.items():
        assert (run["state"], run["step"], run["damaged_lines"]) == ("finished", 8, 1), name
        assert isinstance(run["loss"], float), run
    table = stillroom("runs", "--runs-dir", str(damaged_runs))
    assert table.returncode == 0, table.stderr
    words = " ".join(table.stdout.split())  # the note column wraps at 80 columns
    assert "unreadable" in words and "events.jsonl cannot be read: Is a directory" in words
    assert words.count("1 damaged line skipped") == 4


@pytest.mark.parametrize("name", list(DAMAGE))
def test_attach_to_a_damaged_run_shows_its_ending_without_a_traceback(damaged_runs, name):
    """`attach` reads past damaged lines to the run's real ending; an unreadable file is
    one clear error."""
    result = stillroom("attach", name, "--runs-dir", str(damaged_runs))
    assert "Traceback" not in result.stdout + result.stderr
    if name == "a-folder":
        assert result.returncode == 1
        assert "events.jsonl cannot be read: Is a directory" in result.stdout
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "finished 8 steps" in result.stdout


@pytest.mark.anyio
async def test_the_welcome_screen_lists_damaged_runs(damaged_runs, tmp_path, wizard):
    """The wizard's first screen lists every run, the unreadable one with its reason."""
    from textual.widgets import Static

    from tests.tui.scenes import until

    shown = ["intact", "a-folder", "cut-in-a-character", "loss-not-a-number"]  # it lists five
    for name in shown:
        shutil.copytree(damaged_runs / name, tmp_path / "runs" / name)
    app = wizard
    async with app.run_test(size=(120, 40)) as pilot:
        listing = app.screen.query_one("#runs", Static)
        await until(pilot, lambda: "Reading the runs folder" not in str(listing.render()))
        text = str(listing.render())
        assert "unreadable" in text and "cannot be read: Is a directory" in text
        assert text.count("finished") == 3, text


# Checkpoints


def test_a_checkpoint_that_cannot_be_written_ends_the_run_with_what_to_do(plan_for):
    """A checkpoint folder that cannot be written mid-run ends the run with an error naming
    the folder, the reason and the fix; the last whole checkpoint stays intact.

    The tests run as root, whom a read-only folder does not stop; a file where the
    checkpoint of step 8 must go fails its save for root too, as a read-only folder
    does for everyone else.
    """
    result = stillroom("train", str(plan_for(max_steps=STEPS, save_steps=4)), "--detach")
    run_dir = run_dir_from(result.stdout)
    folder = run_dir / "checkpoints"
    folder.mkdir(exist_ok=True)
    (folder / "checkpoint-8").write_text("in the way\n")  # before the child's first step
    end = ended(run_dir)
    assert isinstance(end, ev.Error) and end.kind == "checkpoint", end
    assert f"could not save the checkpoint of step 8 in {folder}" in end.message
    assert "a file is in the way" in end.message
    assert f"stillroom train --resume {run_dir}" in end.hint
    assert "the checkpoint of step 4, which is whole" in end.hint
    assert "bug" not in end.hint
    kept = folder / "checkpoint-4"
    assert json.loads((kept / "stillroom-complete").read_text())["step"] == 4
    assert (kept / "adapter_model.safetensors").is_file()
    assert runs.status(run_dir).state == "failed"
    shown = stillroom("attach", str(run_dir))
    assert shown.returncode == 1 and "error (checkpoint)" in shown.stdout


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (PermissionError(13, "Permission denied"), "permission denied"),
        (OSError(30, "Read-only file system"), "the disk holding it is read-only"),
        (OSError(28, "No space left on device"), "the disk is full"),
    ],
)
def test_a_failed_checkpoint_save_is_named_for_what_the_os_said(tmp_path, error, words):
    """A read-only folder, a read-only disk and a full disk each get their own words (root
    cannot meet the first two for real, so these errors are made, as the OS raises them)."""
    from engine.train.checkpoints import SaveFailed, mark_complete

    kept = tmp_path / "checkpoints" / "checkpoint-4"
    kept.mkdir(parents=True)
    mark_complete(kept, 4)
    error.filename = str(tmp_path / "checkpoints" / "checkpoint-8")
    try:
        raise RuntimeError("saving the optimizer state failed") from error
    except RuntimeError as raised:
        event = SaveFailed(tmp_path, 8, raised).event()
    assert event.kind == "checkpoint"
    assert f"in {tmp_path / 'checkpoints'}: {words}" in event.message
    assert "the checkpoint of step 4, which is whole" in event.hint
