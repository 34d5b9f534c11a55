"""What Stillroom promises about the data a user trains on.

Nothing is dropped without a word, too much broken data is refused before any model
loads, a hostile row costs bounded memory, and a file that cannot be read or nests
too deep is a message, never a traceback or a wizard that ends. Each test drives the
real ``stillroom`` command, the real training child on the tiny student, or the real
wizard through Pilot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import events as ev
from engine import runs
from engine.plan import load_plan
from tests.engine.training import REPO, events_of, run_dir_from, stillroom, write_plan
from tests.promises.permissions import obey_permissions, permissions_apply
from tests.promises.refusal import refused_cleanly
from tests.tui.scenes import until
from tui.screens.data import DataScreen
from tui.screens.train import TrainScreen

WIDE = {**os.environ, "COLUMNS": "250"}  # sentences on one line, so the test reads them whole
MAX_RSS_MB = 1536
SIZE = (100, 40)


def good(i: int) -> str:
    return json.dumps(
        {"instruction": f"What is {i} plus {i}?", "output": f"{i} plus {i} is {2 * i}."}
    )


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def plan_for(folder: Path, model: Path, data: Path, max_steps: int = 2, **dataset) -> Path:
    """A tiny-student plan on ``data``; ``dataset`` keys are added to its [dataset] table."""
    plan = write_plan(folder, model, data, max_steps=max_steps)
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in dataset.items())
    plan.write_text(plan.read_text().replace("[dataset]\n", "[dataset]\n" + extra))
    return plan


def inspect_json(*args: str) -> dict:
    result = stillroom("inspect", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def data_report(run_dir: Path) -> ev.DataReport:
    (report,) = events_of(run_dir, ev.DataReport)
    return report


def never_loaded_the_model(run_dir: Path) -> bool:
    """No LoRA was built and no step taken: the run ended in the data stage."""
    lines = [e.line for e in events_of(run_dir, ev.Log)]
    return not any(x.startswith("LoRA trains") for x in lines) and not events_of(run_dir, ev.Step)


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


# --------------------------------------------------------------------------- unusable rows


def test_train_says_what_it_cannot_use_and_refuses_a_half_broken_file(tiny_model_dir, tmp_path):
    """Training never drops rows without a word: it reports them as inspect counts them,
    and refuses, before the model loads, a file of which more than the plan's share is unusable."""
    data = write_lines(
        tmp_path / "half.jsonl", [x for i in range(10) for x in (good(i), '{"instr')]
    )
    result = stillroom("train", str(plan_for(tmp_path, tiny_model_dir, data)), env=WIDE)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "data: 20 records, 10 usable, 10 unusable (50%): 10 malformed_line" in result.stdout
    run_dir = run_dir_from(result.stdout)
    inspected = inspect_json(str(data))
    report = data_report(run_dir)
    assert (report.records, report.usable, report.unusable) == (
        inspected["records"], inspected["usable_rows"], inspected["unusable"]
    ) == (20, 10, 10)  # fmt: skip
    assert report.problems == {p["kind"]: p["count"] for p in inspected["problems"]}
    (end,) = events_of(run_dir, ev.Error)
    assert end.kind == "dataset"
    assert "10 of 20 rows (50%) are unusable" in end.message
    assert "dataset.max_unusable_share = 0.2" in end.message and "10 malformed_line" in end.message
    assert f"stillroom inspect {data}" in end.hint and "--map" in end.hint
    assert "raise dataset.max_unusable_share" in end.hint
    assert never_loaded_the_model(run_dir)


def test_mixed_schemas_train_only_once_the_plan_allows_what_inspect_counts(
    tiny_model_dir, tmp_path
):
    """Rows of another schema count as unusable; raising dataset.max_unusable_share trains on
    exactly the rows inspect calls usable, and the run says how many."""
    other = [json.dumps({"prompt": f"Other {i}?", "completion": f"Reply {i}."}) for i in range(16)]
    data = write_lines(tmp_path / "mixed.jsonl", [good(i) for i in range(4)] + other)
    refused = stillroom("train", str(plan_for(tmp_path, tiny_model_dir, data)), env=WIDE)
    assert refused.returncode == 1
    assert "16 of 20 rows (80%) are unusable" in refused.stdout
    assert "16 empty_prompt, 16 missing_response" in refused.stdout

    allowed = plan_for(tmp_path, tiny_model_dir, data, max_unusable_share=0.9)
    result = stillroom("train", str(allowed), env=WIDE)
    assert result.returncode == 0, result.stdout + result.stderr
    inspected = inspect_json(str(data))
    report = data_report(run_dir_from(result.stdout))
    assert (report.records, report.usable, report.unusable) == (20, 4, 16)
    assert (inspected["records"], inspected["usable_rows"], inspected["unusable"]) == (20, 4, 16)
    assert "data: 20 records, 4 usable, 16 unusable (80%)" in result.stdout
    assert "covers the 4 training rows" in result.stdout


def test_the_unusable_share_is_a_plan_key_checked_like_any_other(tmp_path):
    """dataset.max_unusable_share takes a share from 0 to 1; anything else is named with the fix."""
    plan = tmp_path / "plan.toml"
    plan.write_text("[dataset]\nmax_unusable_share = 1.5\n")
    result = stillroom("train", str(plan), cwd=tmp_path)
    assert refused_cleanly(result, "dataset.max_unusable_share", "less than or equal to 1")


@pytest.mark.anyio
async def test_the_train_step_shows_the_data_report_and_why_it_refused(
    make_app, tiny_model_dir, project
):
    """The Train step shows, on its own line, what training found in the data, and the refusal
    with its fix; the wizard stays open."""
    data = write_lines(project / "half.jsonl", [x for i in range(5) for x in (good(i), "oops")])
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        app.change("student", model=str(tiny_model_dir), max_seq_length=256)
        app.change("dataset", source=data.name)
        app.change("training", max_steps=2)
        app.switch_mode("train")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: screen.state == "failed", timeout_s=180)
        line = str(screen.query_one("#data-report").render())
        assert "10 records, 5 usable, 5 unusable (50%): 5 malformed_line" in line
        problem = str(screen.query_one("#problem").render())
        assert "max_unusable_share" in problem and f"stillroom inspect {data}" in problem
        assert app.is_running


# --------------------------------------------------------------------------- hostile rows


def peak_rss_mb(command: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``command`` as the only child of a fresh interpreter; its peak resident memory."""
    wrapper = (
        "import resource, subprocess, sys, json\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps([done.returncode, done.stdout, done.stderr, peak]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *command], capture_output=True, text=True, cwd=cwd,
        env=env, timeout=600, check=True,
    )  # fmt: skip
    code, stdout, stderr, peak = json.loads(out.stdout)
    return subprocess.CompletedProcess(command, code, stdout, stderr), peak


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five ordinary rows around one 50 MB line (row 2)."""
    path = tmp_path_factory.mktemp("hostile") / "hostile.jsonl"
    words = " ".join(["river", "stone", "light", "cloud", "north"] * 12)
    answer = (words + " ") * (50 * 2**20 // (len(words) + 1) + 1)
    rows = [good(0), json.dumps({"instruction": "Summarise this.", "output": answer})]
    write_lines(path, rows + [good(i) for i in range(1, 5)])
    assert path.stat().st_size > 50 * 2**20
    return path


def test_one_50_mb_row_is_too_long_to_inspect_at_a_bounded_cost(hostile, tiny_model_dir):
    """`inspect --model` reports a 50 MB row as too_long without tokenising it whole: its
    memory stays far below the gigabytes the row once cost."""
    done, peak = peak_rss_mb(
        [sys.executable, "-m", "tui.cli", "inspect", str(hostile), "--model", str(tiny_model_dir),
         "--json"], REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    problems = {p["kind"]: p for p in json.loads(done.stdout)["problems"]}
    assert problems["too_long"]["rows"] == [2]
    assert peak < MAX_RSS_MB, f"peak RSS {peak:.0f} MB"


def test_one_50_mb_row_is_too_long_to_train_on_at_a_bounded_cost(hostile, tiny_model_dir, tmp_path):
    """The training child drops a 50 MB row as too_long, trains on the rest, and its memory
    stays far below the gigabytes the row once cost."""
    run_dir = runs.create_run(load_plan(plan_for(tmp_path, tiny_model_dir, hostile)))
    done, peak = peak_rss_mb([sys.executable, "-m", "engine", "train", str(run_dir)], REPO)
    assert done.returncode == 0, done.stderr
    report = data_report(run_dir)
    assert (report.records, report.usable, report.problems) == (6, 5, {"too_long": 1})
    assert events_of(run_dir, ev.Finished)
    assert peak < MAX_RSS_MB, f"peak RSS {peak:.0f} MB"


# --------------------------------------------------------------------------- nesting


def test_a_line_nested_thousands_deep_is_skipped_and_named(tiny_model_dir, tmp_path):
    """A JSONL line nested thousands deep is skipped and named by its line, in inspect and in
    training, which goes on with the other rows."""
    lines = [good(i) for i in range(9)]
    lines.insert(3, '{"instruction": "x", "output": ' + deep_json(5000) + "}")
    data = write_lines(tmp_path / "deep.jsonl", lines)
    shown = stillroom("inspect", str(data), env=WIDE)
    assert shown.returncode == 0, shown.stderr
    assert "nested too deep" in shown.stdout and "Traceback" not in shown.stderr
    problems = {p["kind"]: p["rows"] for p in inspect_json(str(data))["problems"]}
    assert problems == {"too_deep": [4]}

    result = stillroom("train", str(plan_for(tmp_path, tiny_model_dir, data)), env=WIDE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "data: 10 records, 9 usable, 1 unusable (10%): 1 too_deep" in result.stdout
    assert "nested too deep" in result.stdout


def test_a_document_nested_thousands_deep_is_a_message_with_its_line(tiny_model_dir, tmp_path):
    """A JSON document nested thousands deep cannot be skipped: inspect and train refuse it,
    naming the line and "nested too deep", with no traceback."""
    data = tmp_path / "deep.json"
    data.write_text(
        '[\n  {"instruction": "Hi", "output": "Hello"},\n  ' + deep_json(5000) + "\n]\n"
    )
    shown = stillroom("inspect", str(data))
    assert refused_cleanly(shown, "line 3", "nested too deep")
    result = stillroom("train", str(plan_for(tmp_path, tiny_model_dir, data)), env=WIDE)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    (end,) = events_of(run_dir_from(result.stdout), ev.Error)
    assert end.kind == "dataset" and "line 3" in end.message and "nested too deep" in end.message


async def read_in_data_step(app, pilot, source: str) -> DataScreen:
    await pilot.press("n")
    await pilot.pause()
    app.change("dataset", source=source)
    await pilot.press("ctrl+n")
    await until(pilot, lambda: isinstance(app.screen, DataScreen))
    screen = app.screen
    await until(pilot, lambda: screen.report or "✗" in str(screen.query_one("#summary").render()))
    return screen


async def still_reads(app, pilot, screen: DataScreen) -> None:
    """The step goes on working: another file reads as usual."""
    write_lines(Path("good.jsonl"), [good(i) for i in range(3)])
    app.change("dataset", source="good.jsonl")
    screen.action_inspect()
    await until(pilot, lambda: screen.report is not None and screen.report.usable_rows == 3)
    assert app.is_running


@pytest.mark.anyio
async def test_the_data_step_says_a_file_nests_too_deep_and_stays_usable(make_app):
    """The Data step shows "nested too deep" and the line, instead of the wizard ending."""
    Path("deep.json").write_text(deep_json(5000))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await read_in_data_step(app, pilot, "deep.json")
        summary = str(screen.query_one("#summary").render())
        assert "nested too deep" in summary and "line 1" in summary
        await still_reads(app, pilot, screen)


# --------------------------------------------------------------------------- unreadable


def test_a_dataset_the_user_cannot_read_is_a_message_in_inspect_and_train(tiny_model_dir, tmp_path):
    """A dataset without read permission is one message with the fix, no traceback, in
    inspect and in train."""
    data = write_lines(tmp_path / "locked.jsonl", [good(i) for i in range(3)])
    data.chmod(0)
    shown = stillroom("inspect", str(data), preexec_fn=obey_permissions, cwd=tmp_path)
    assert refused_cleanly(shown, "cannot read it", "Permission denied", "chmod u+r")
    plan = plan_for(tmp_path, tiny_model_dir, data)
    result = stillroom("train", str(plan), env=WIDE, preexec_fn=obey_permissions, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    (end,) = events_of(run_dir_from(result.stdout), ev.Error)
    assert end.kind == "dataset" and "Permission denied" in end.message
    assert "chmod u+r" in end.hint


@pytest.mark.anyio
async def test_the_data_step_says_a_dataset_cannot_be_read_and_stays_usable(make_app):
    """The Data step shows that a dataset cannot be read, and why, instead of the wizard ending."""
    locked = write_lines(Path("locked.jsonl"), [good(i) for i in range(3)])
    locked.chmod(0)
    with permissions_apply():
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            screen = await read_in_data_step(app, pilot, "locked.jsonl")
            summary = str(screen.query_one("#summary").render())
            assert "cannot read it" in summary and "Permission denied" in summary
            await still_reads(app, pilot, screen)
