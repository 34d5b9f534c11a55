""" "Is this run trained?" has one answer: a whole adapter, wherever the question is asked."""

from __future__ import annotations

import time

import pytest

from engine import events as ev
from engine import runs
from engine.chat import load_student, resolve_run
from engine.errors import UserError
from engine.export import export
from engine.plan import Plan
from engine.run_dir import RunDir


def finished_run(runs_dir, name: str, *, whole: bool):
    plan = Plan().model_copy(deep=True)
    plan.output.runs_dir, plan.output.name = str(runs_dir), name
    run_dir = runs.create_run(plan)
    emit = runs.EventWriter(run_dir)
    emit(ev.Started(job="train"))
    emit(ev.Finished(adapter_path=str(run_dir / "adapter"), steps=1))
    (run_dir / "adapter").mkdir()
    if whole:
        (run_dir / "adapter" / "adapter_config.json").write_text("{}")
    return run_dir


def test_a_half_written_adapter_is_not_a_trained_run(tmp_path):
    """chat and export pass over an adapter folder a crash left without its config."""
    trained = finished_run(tmp_path, "whole", whole=True)
    time.sleep(1.1)  # a newer run, whose adapter was never finished
    broken = finished_run(tmp_path, "broken", whole=False)
    assert RunDir(trained).adapter == trained / "adapter" and RunDir(trained).trained
    assert RunDir(broken).adapter is None and not RunDir(broken).trained
    assert resolve_run(None, tmp_path) == trained
    with pytest.raises(UserError, match="has no adapter"):
        load_student(broken)
    with pytest.raises(UserError, match="has no adapter to export"):
        export(broken, "adapter")
