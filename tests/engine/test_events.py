"""The event protocol: every type survives the wire unchanged."""

from __future__ import annotations

import json

import pytest

from engine import events as ev

SAMPLES = [
    ev.Started(
        job="train",
        backend="hf",
        backend_reason="no CUDA",
        device="cpu",
        versions={"torch": "2.13.0"},
        plan_hash="abc",
        max_steps=60,
        pid=42,
        model="Qwen/Qwen2.5-1.5B-Instruct",
    ),
    ev.Step(
        step=3,
        max_steps=60,
        epoch=0.1,
        loss=1.5,
        lr=2e-4,
        grad_norm=0.9,
        tokens_per_s=1234.5,
        samples_per_s=4.0,
        eta_s=30.0,
        mem_allocated_mb=1.0,
        mem_reserved_mb=2.0,
    ),
    ev.GpuSample(
        index=0,
        name="NVIDIA H100",
        mem_used_mb=1000.0,
        mem_total_mb=81559.0,
        util_pct=40.0,
        temp_c=50.0,
        power_w=300.0,
        processes=(ev.GpuProcess(pid=1, mem_used_mb=900.0, name="python", own=True),),
    ),
    ev.Progress(
        job="generate",
        stage="answers",
        done=5,
        total=10,
        failed=1,
        in_flight=2,
        prompt_tokens=100,
        completion_tokens=200,
        cost_usd=0.01,
        elapsed_s=3.0,
        eta_s=3.0,
    ),
    ev.Log(line="loading model"),
    ev.Checkpoint(step=20, path="runs/x/checkpoints/checkpoint-20"),
    ev.Warning(message="GPU is busy", hint="another process uses 30 GB"),
    ev.DataReport(
        source="data.jsonl",
        records=20,
        usable=10,
        unusable=10,
        problems={"malformed_line": 10, "duplicate": 2},
        max_unusable_share=0.2,
    ),
    ev.Ready(job="chat-serve", run="runs/x", backend="hf"),
    ev.Token(text="Par"),
    ev.Answer(text="Paris.", tokens=3, cut=False, ended_cleanly=True, ttft_s=0.2, tokens_per_s=9.0),
    ev.Refused(message="bad request: not JSON", hint="One JSON object a line."),
    ev.Result(job="eval", paths={"report": "runs/x/eval/report.json"}, summary="learned 3 of 5"),
    ev.Finished(adapter_path="runs/x/adapter", train_loss=0.5, runtime_s=12.0, steps=60),
    ev.Cancelled(step=10, adapter_path="runs/x/adapter"),
    ev.Error(kind="oom", message="CUDA out of memory", hint="lower batch_size", log_tail="..."),
    ev.Error(kind="crashed", message="Killed", hint="See eval.log.", exit_code=-9),
]


def test_every_type_has_a_sample():
    assert {type(e).type for e in SAMPLES} == set(ev.event_types())


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_round_trip(event):
    line = ev.encode(event)
    assert "\n" not in line
    assert json.loads(line)["type"] == event.type
    assert ev.decode(line) == event


def test_unknown_type_is_refused():
    with pytest.raises(ValueError, match="unknown event type"):
        ev.decode('{"type": "nope"}')


def test_terminal_types():
    assert ev.TERMINAL == {"finished", "cancelled", "error"}
