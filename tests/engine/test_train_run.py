"""Headless training of the tiny model in a real detached child process.

Covers the run life cycle a user meets: train and learn, follow, list, cancel
(adapter kept), SIGKILL then resume to exactly the planned steps (a torn
checkpoint ignored), injected OOM and NaN ending in error events with hints,
and a dataset problem reported before the model loads.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from engine import events as ev
from engine import runs
from tests.engine.training import (
    FACTS,
    events_of,
    generate,
    run_dir_from,
    stillroom,
    wait_for,
    write_facts,
    write_plan,
)
from tests.faults import fault_env


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory) -> Path:
    """One finished 30-step run on the facts, through `stillroom train PLAN`."""
    folder = tmp_path_factory.mktemp("trained")
    plan = write_plan(folder, tiny_model_dir, write_facts(folder))
    result = stillroom("train", str(plan))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "finished 30 steps" in result.stdout
    return run_dir_from(result.stdout)


def test_training_runs_and_the_loss_falls(trained):
    losses = [e.loss for e in events_of(trained, ev.Step)]
    assert len(losses) == 30
    assert sum(losses[-5:]) < 0.95 * sum(losses[:5])
    for name in ("plan.toml", "events.jsonl", "train.log", "summary.json"):
        assert (trained / name).is_file()
    assert json.loads((trained / "summary.json").read_text())["steps"] == 30


def test_the_same_plan_trains_to_the_same_losses(trained, tiny_model_dir, tmp_path):
    """The plan's seed fixes the run: LoRA's starting weights, the row order, every loss."""
    plan = write_plan(tmp_path, tiny_model_dir, write_facts(tmp_path))
    again = stillroom("train", str(plan))
    assert again.returncode == 0, again.stdout + again.stderr
    first = [e.loss for e in events_of(trained, ev.Step)]
    assert [e.loss for e in events_of(run_dir_from(again.stdout), ev.Step)] == first


def test_the_run_says_in_plain_words_what_it_will_do(trained):
    lines = [e.line for e in events_of(trained, ev.Log)]
    assert any("max_steps=30 x 4 samples per step covers the 24 training rows" in x for x in lines)
    assert any(x.startswith("LoRA trains ") for x in lines)


def test_the_adapter_loads_back_and_changes_the_answers(trained, tiny_model_dir):
    adapter = trained / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "tokenizer_config.json").is_file()
    question = FACTS[0][0]
    assert generate(tiny_model_dir, question, adapter) != generate(tiny_model_dir, question)


def test_runs_lists_the_run_as_finished(trained):
    result = stillroom("runs", "--json", "--runs-dir", str(trained.parent))
    assert result.returncode == 0, result.stderr
    (listed,) = json.loads(result.stdout)
    assert listed["state"] == "finished" and listed["step"] == 30 and listed["loss"] > 0


def test_cancel_stops_at_a_step_and_saves_that_steps_adapter(tiny_model_dir, tmp_path):
    plan = write_plan(tmp_path, tiny_model_dir, write_facts(tmp_path), max_steps=5000)
    run_dir = run_dir_from(stillroom("train", str(plan), "--detach").stdout)
    wait_for(run_dir, lambda e: isinstance(e, ev.Step) and e.step >= 3)
    result = stillroom("cancel", str(run_dir))
    assert result.returncode == 0, result.stderr
    end = wait_for(run_dir, lambda e: False)
    assert isinstance(end, ev.Cancelled), end
    assert 3 <= end.step < 5000
    assert (Path(end.adapter_path) / "adapter_config.json").is_file()
    assert runs.status(run_dir).state == "cancelled"


def test_sigkill_then_resume_ends_at_the_planned_step(tiny_model_dir, tmp_path):
    plan = write_plan(tmp_path, tiny_model_dir, write_facts(tmp_path), max_steps=400, save_steps=10)
    run_dir = run_dir_from(stillroom("train", str(plan), "--detach").stdout)
    wait_for(run_dir, lambda e: isinstance(e, ev.Checkpoint) and e.step >= 20)
    pid = int((run_dir / "pid").read_text().split()[0])
    os.killpg(pid, signal.SIGKILL)
    crashed = wait_for(run_dir, lambda e: False)
    assert isinstance(crashed, ev.Error) and crashed.kind == "crashed"
    assert runs.status(run_dir).state == "crashed"
    saved = max(e.step for e in events_of(run_dir, ev.Checkpoint))
    # A save torn by the kill: a higher-numbered folder without the completeness marker.
    torn = run_dir / "checkpoints" / "checkpoint-999"
    torn.mkdir()
    (torn / "trainer_state.json").write_text("{")

    result = stillroom("train", "--resume", str(run_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not torn.exists()
    attempts = runs.read_events(run_dir)
    second = attempts[max(i for i, e in enumerate(attempts) if isinstance(e, ev.Started)) :]
    steps = [e.step for e in second if isinstance(e, ev.Step)]
    assert steps[0] == saved + 1 and steps[-1] == 400
    assert isinstance(second[-1], ev.Finished) and second[-1].steps == 400


@pytest.mark.parametrize(
    ("fault", "at", "kind", "words"),
    [
        ("oom", 2, "oom", ("batch_size", "max_seq_length", "lora.r")),
        ("nan", 3, "nan_loss", ("learning_rate",)),
    ],
)
def test_injected_faults_end_in_error_events_with_hints(
    tiny_model_dir, tmp_path, fault, at, kind, words
):
    plan_path = write_plan(tmp_path, tiny_model_dir, write_facts(tmp_path))
    from engine.plan import load_plan

    run_dir = runs.create_run(load_plan(plan_path))
    runs.start(run_dir, env=fault_env(tmp_path / "fault", fault, at))
    end = wait_for(run_dir, lambda e: False)
    assert isinstance(end, ev.Error) and end.kind == kind, end
    assert all(word in end.hint for word in words), end.hint
    assert "Traceback" not in end.message
    assert runs.status(run_dir).state == "failed"


def test_a_dataset_problem_is_reported_before_the_model_loads(tiny_model_dir, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"instruction": "Hi", "output": ""}\n' * 3)
    plan = write_plan(tmp_path, tiny_model_dir, data)
    started = time.monotonic()
    result = stillroom("train", str(plan))
    assert result.returncode == 1
    run_dir = run_dir_from(result.stdout)
    (end,) = events_of(run_dir, ev.Error)
    assert end.kind == "dataset" and "no usable conversations" in end.message
    assert not events_of(run_dir, ev.Step)
    assert time.monotonic() - started < 60


def test_a_probe_runs_a_few_steps_and_projects_the_full_run(tiny_model_dir, tmp_path):
    """A probe reports step time before the user commits, and leaves no adapter behind."""
    plan = write_plan(tmp_path, tiny_model_dir, write_facts(tmp_path), max_steps=200)
    result = stillroom("train", str(plan), "--probe")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "probe: no GPU memory measured (CPU)" in result.stdout
    assert "the full run of 200 steps would take about" in result.stdout
    run_dir = run_dir_from(result.stdout)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["steps"], summary["planned_steps"]) == (5, 200)
    assert not (run_dir / "adapter").exists()


def test_checkpoints_follow_wall_time_too_and_two_are_kept(tiny_model_dir, tmp_path):
    """A long step budget never risks more than save_minutes of work."""
    plan = write_plan(
        tmp_path, tiny_model_dir, write_facts(tmp_path), max_steps=40, save_steps=1000
    )
    # 30 ms: even the tiny model's fastest steps pass it every few steps.
    text = plan.read_text().replace("[training]\n", "[training]\nsave_minutes = 0.0005\n")
    plan.write_text(text)
    result = stillroom("train", str(plan))
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = run_dir_from(result.stdout)
    saved = [e.step for e in events_of(run_dir, ev.Checkpoint)]
    assert len(saved) >= 3, saved  # by time alone: save_steps is never reached
    kept = [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("checkpoint-")]
    assert len(kept) == 2, kept


def test_ctrl_c_in_a_terminal_detaches_and_training_goes_on(tiny_model_dir, tmp_path):
    """Ctrl-C reaches the whole foreground process group of a terminal: the live
    display stops and says how to come back, the training child does not notice."""
    import pty
    import re
    import select
    import subprocess
    import sys

    from tests.engine.training import REPO

    plan = write_plan(tmp_path, tiny_model_dir, write_facts(tmp_path), max_steps=100_000)
    main, secondary = pty.openpty()
    follower = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "train", str(plan)],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        cwd=REPO,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
        # and Ctrl-C's default action, which a background parent's ignoring would otherwise pass on
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env={**os.environ, "COLUMNS": "100", "LINES": "30", "TERM": "xterm-256color"},
    )
    os.close(secondary)
    screen = b""
    deadline = time.monotonic() + 120
    while not re.search(rb"step \d+/100000", screen) and time.monotonic() < deadline:
        try:
            screen += os.read(main, 65536)
        except OSError:  # the follower closed the terminal: it exited early
            break
    assert re.search(rb"step \d+/100000", screen), (
        follower.poll(),
        screen.decode("utf-8", "replace"),
    )
    os.killpg(follower.pid, signal.SIGINT)
    # Read on while it leaves: a follower blocked on a full terminal could never exit.
    leave_by = time.monotonic() + 60
    while select.select([main], [], [], max(0.0, leave_by - time.monotonic()))[0]:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed with its last reader
            break
        if not chunk:
            break
        screen += chunk
    assert follower.wait(timeout=30) == 0
    os.close(main)
    text = screen.decode(errors="replace")
    assert "Detached; training goes on. Re-attach: stillroom attach" in text
    run_dir = Path(text.split("run directory: ")[1].split()[0])
    detached_at = max(e.step for e in events_of(run_dir, ev.Step))
    later = wait_for(run_dir, lambda e: isinstance(e, ev.Step) and e.step >= detached_at + 20)
    assert isinstance(later, ev.Step)  # still training, nobody watching
    assert stillroom("cancel", str(run_dir)).returncode == 0
    assert isinstance(wait_for(run_dir, lambda e: False), ev.Cancelled)


def test_resume_after_the_optimizer_changed_keeps_the_checkpoints_optimizer(
    tiny_model_dir, tmp_path
):
    """A run checkpointed with one optimizer and resumed where another would be chosen (a
    different card class, or an edited plan) continues with the checkpoint's optimizer and
    its saved states, says so in the run log, and ends at the planned step."""
    plan = write_plan(
        tmp_path, tiny_model_dir, write_facts(tmp_path), max_steps=200, optimizer="sgd"
    )
    run_dir = run_dir_from(stillroom("train", str(plan), "--detach").stdout)
    wait_for(run_dir, lambda e: isinstance(e, ev.Checkpoint) and e.step >= 10)
    os.killpg(int((run_dir / "pid").read_text().split()[0]), signal.SIGKILL)
    wait_for(run_dir, lambda e: False)
    saved = max(e.step for e in events_of(run_dir, ev.Checkpoint))
    plan_file = run_dir / "plan.toml"
    plan_file.write_text(plan_file.read_text().replace('"sgd"', '"adamw_torch"'))

    result = stillroom("train", "--resume", str(run_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    attempts = runs.read_events(run_dir)
    second = attempts[max(i for i, e in enumerate(attempts) if isinstance(e, ev.Started)) :]
    lines = [e.line for e in second if isinstance(e, ev.Log)]
    assert any("sgd" in x and "adamw_torch" in x and "checkpoint" in x for x in lines), lines
    steps = [e.step for e in second if isinstance(e, ev.Step)]
    assert steps[0] == saved + 1 and steps[-1] == 200
    assert isinstance(second[-1], ev.Finished) and second[-1].steps == 200
