"""Two CUDA cards, the unsloth backend: the plan trains on both (NCCL) with each step's rows
dealt to the cards by token count, a killed rank ends the run as crashed naming it, and
``--resume --gpus 1`` finishes on one card at exactly the planned step, from the last whole
checkpoint.
"""

from __future__ import annotations

import signal

import pytest

from engine import events as ev
from engine import gpu, runs
from tests.engine.training import (
    events_of,
    rank_process,
    run_dir_from,
    small_qwen2,
    stillroom,
    wait_for,
    write_facts,
    write_plan,
)

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs"),
]
PLANNED = 600


def test_a_rank_killed_on_two_gpus_resumes_on_one_and_ends_at_the_planned_step(tmp_path):
    model = small_qwen2(tmp_path / "model")
    plan = write_plan(
        tmp_path,
        model,
        write_facts(tmp_path, copies=8),
        gpus=2,
        max_steps=PLANNED,
        batch_size=8,
        learning_rate=3e-3,
        warmup_steps=10,
        save_steps=20,
        rebatch=False,  # the notebook's padding-free batches, which Unsloth balances by tokens
    )
    run_dir = run_dir_from(stillroom("train", str(plan), "--detach").stdout)
    saved = wait_for(run_dir, lambda e: isinstance(e, ev.Checkpoint) and e.step >= 40, 400)
    assert isinstance(saved, ev.Checkpoint), saved
    (started,) = events_of(run_dir, ev.Started)
    assert started.device.startswith("2 x ") and "nccl" in started.device, started.device
    assert started.backend == "unsloth"
    logs = [e.line for e in events_of(run_dir, ev.Log)]
    assert any("by token count (UNSLOTH_TOKEN_BALANCE=1)" in line for line in logs), logs
    rank_1 = rank_process(run_dir, 1)
    card_0 = next(card for card in gpu.sample() if card.index == 0)
    assert rank_1.pid not in {p.pid for p in card_0.processes}, card_0.processes  # no stray context
    rank_1.send_signal(signal.SIGKILL)
    crashed = wait_for(run_dir, lambda e: False, 120)
    assert isinstance(crashed, ev.Error) and crashed.kind == "crashed", crashed
    assert "rank 1 of 2" in crashed.message
    last_whole = max(e.step for e in events_of(run_dir, ev.Checkpoint))

    result = stillroom("train", "--resume", str(run_dir), "--gpus", "1", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    events = runs.read_events(run_dir)
    second = events[max(i for i, e in enumerate(events) if isinstance(e, ev.Started)) :]
    assert " x " not in second[0].device, second[0].device  # one card now
    steps = [e.step for e in second if isinstance(e, ev.Step)]
    assert steps[0] == last_whole + 1 and steps[-1] == PLANNED
    assert isinstance(second[-1], ev.Finished) and second[-1].steps == PLANNED
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    losses = [e.loss for e in events if isinstance(e, ev.Step)]
    assert sum(losses[-10:]) < sum(losses[:10]) / 2, (losses[:10], losses[-10:])
