"""Training pieces that need no child process: schema doc, checkpoints, LoRA size."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from pathlib import Path

from engine import events as ev
from engine import run_follow, runs
from engine.train.checkpoints import mark_complete, prepare_resume

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_the_schema_doc_names_every_event_and_field():
    """docs/events.md has a row for each event type, no row for a type that is gone, and
    names each field in its own type's row."""
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (.*)\|$", DOC.read_text(), re.MULTILINE))
    types = ev.event_types()
    assert set(rows) == set(types), "a type missing from the doc, or one that is gone"
    for name, cls in types.items():
        for field in dataclasses.fields(cls):
            assert field.name == "t" or f"`{field.name}`" in rows[name], f"{name}.{field.name}"


def test_the_schema_doc_lists_every_child_job_and_error_kind():
    """Each job `python -m engine` runs, and each error kind the code says, is documented."""
    from engine.__main__ import parser

    text = DOC.read_text()
    (jobs,) = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for job in jobs.choices:
        assert f"| `{job} " in text, job
    root = Path(__file__).resolve().parents[2]
    said = {
        kind
        for folder in ("engine", "tui")
        for path in (root / folder).rglob("*.py")
        for kind in re.findall(r'ev\.Error\(\s*kind="(\w+)"', path.read_text())
    }
    assert {"user", "no_run", "exception"} <= said  # the pattern finds them
    kinds = text[text.index("Error kinds:") :]
    for kind in said | {"student", "dataset", "plan", "crashed"}:
        assert f"`{kind}`" in kinds, kind


def test_resume_takes_the_newest_whole_checkpoint_and_drops_torn_ones(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (10, 20, 30):
        (root / f"checkpoint-{step}").mkdir(parents=True)
    mark_complete(root / "checkpoint-10", 10)
    mark_complete(root / "checkpoint-20", 20)
    assert prepare_resume(tmp_path) == (20, root / "checkpoint-20")
    assert not (root / "checkpoint-30").exists()
    assert prepare_resume(tmp_path / "nothing") is None


def test_lora_r16_on_all_projections_of_qwen25_15b_trains_18464768_parameters():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from engine.plan import ALL_PROJECTIONS

    config = Qwen2Config(
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        vocab_size=151936,
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=16, target_modules=ALL_PROJECTIONS))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 18_464_768


def test_only_stillroom_batching_groups_by_length(tmp_path):
    """rebatch = false reproduces the notebook: same micro-batches, random sampling."""
    from engine.plan import Plan
    from engine.train.backends import Setup, training_arguments

    def sampling(group_by_length: bool, micro_batch: int, batching: str = "padded") -> str:
        setup = Setup(
            backend="unsloth",
            device="cuda",
            precision="bf16",
            optimizer="adamw_8bit",
            micro_batch=micro_batch,
            grad_accum=1,
            max_steps=60,
            batching=batching,
            group_by_length=group_by_length,
        )
        return training_arguments(Plan(), setup, tmp_path)["train_sampling_strategy"]

    assert sampling(group_by_length=True, micro_batch=8) == "group_by_length"
    assert sampling(group_by_length=False, micro_batch=2) == "random"
    assert sampling(group_by_length=True, micro_batch=8, batching="packed") == "random"


def test_the_notebooks_batching_on_unsloth_is_padding_free_as_unsloth_makes_it():
    """Unsloth turns padding-free on for the notebook's trainer; rebatch = false must match."""
    from engine.train.job import auto_batching

    assert auto_batching("unsloth", rebatch=False) == "padding_free"
    assert auto_batching("unsloth", rebatch=True) == "padded"
    # Without Unsloth's per-sample lengths, unpadded samples would attend to each other.
    assert auto_batching("hf", rebatch=False) == "padded"


def test_rendering_apart_gives_the_same_rows_and_the_same_mistakes(tiny_model_dir, tmp_path):
    """The unsloth backend renders in a separate process (Unsloth must come before
    transformers); what it trains on, and what it tells the user, must not change."""
    import pytest

    from engine import runs
    from engine.errors import UserError
    from engine.plan import load_plan
    from engine.train.dataset import prepare_rows, prepare_rows_apart
    from tests.engine.training import write_facts, write_plan

    plan = load_plan(write_plan(tmp_path, tiny_model_dir, write_facts(tmp_path)))
    run_dir = runs.create_run(plan)
    passed_on: list[ev.Event] = []
    apart = prepare_rows_apart(
        run_dir / runs.PLAN_FILE, run_dir, run_dir / runs.LOG_FILE, passed_on.append
    )
    here: list[ev.Event] = []
    assert prepare_rows(plan, here.append).rows == apart.rows
    assert [type(e) for e in passed_on] == [type(e) for e in here]  # the data report reaches us
    assert not (run_dir / "rows.pkl").exists()

    (tmp_path / "facts.jsonl").write_text('{"instruction": "only a question"}\n')
    with pytest.raises(UserError) as caught:
        prepare_rows_apart(run_dir / runs.PLAN_FILE, run_dir, run_dir / runs.LOG_FILE, print)
    assert caught.value.hint
    assert "Traceback" not in (run_dir / runs.LOG_FILE).read_text()


def test_training_child_turns_on_expandable_segments_unless_the_user_chose(monkeypatch):
    """torch reads the allocator setting once, so the child must set it before CUDA starts."""
    import engine.__main__ as child

    env = {
        k: v for k, v in os.environ.items() if k not in (*child.ALLOCATOR_VARS, "WSL_DISTRO_NAME")
    }
    monkeypatch.setattr(os, "environ", env)  # the child's settings stay out of this session
    child._child_env()
    if "microsoft" not in os.uname().release.lower():
        assert env["PYTORCH_ALLOC_CONF"] == "expandable_segments:True"
    del env["PYTORCH_ALLOC_CONF"]
    env["PYTORCH_CUDA_ALLOC_CONF"] = "max_split_size_mb:128"
    child._child_env()
    assert "PYTORCH_ALLOC_CONF" not in env


def test_training_child_without_a_gpu_lets_idle_openmp_threads_sleep(monkeypatch):
    """Spinning OpenMP threads on a busy CPU made each step several times slower; the user's
    own OMP_WAIT_POLICY wins."""
    import engine.__main__ as child

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU for this child, whatever the machine has
    monkeypatch.setattr(os, "environ", env)
    child._child_env()
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    child._child_env()
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"


def test_an_ending_written_as_the_child_exits_is_not_taken_for_a_crash(tmp_path, monkeypatch):
    """A cancelled (or finished) child writes its last event and exits; a follower that read
    the file just before and finds the process gone just after must still show that ending."""
    write = runs.EventWriter(tmp_path)
    write(ev.Started(job="train", backend="hf", backend_reason="CPU", device="cpu", max_steps=9))
    runs.write_pid(tmp_path, os.getpid())
    cancelled = ev.Cancelled(step=3, adapter_path=str(tmp_path / "adapter"))

    def exits_after_writing_its_ending(run_dir: Path) -> bool:
        write(cancelled)
        return False

    monkeypatch.setattr(run_follow, "child_alive", exits_after_writing_its_ending)
    followed = list(run_follow.follow(tmp_path, poll_s=0.01))
    assert [e.type for e in followed] == ["started", "cancelled"]


def test_a_checkpoints_optimizer_trains_on_unless_this_machine_cannot_run_it():
    """Resume keeps the checkpoint's optimizer (its states load); 8-bit states without CUDA
    are dropped with a line saying what carries on; the same state layout changes nothing."""
    from engine.train.checkpoints import resume_optimizer

    assert resume_optimizer("adamw_8bit", "adamw_torch_fused", cuda=True)[:2] == (
        "adamw_8bit",
        True,
    )
    assert resume_optimizer("adamw_torch_fused", "adamw_8bit", cuda=True)[:2] == (
        "adamw_torch_fused",
        True,
    )
    optimizer, keep, line = resume_optimizer("adamw_8bit", "adamw_torch", cuda=False)
    assert (optimizer, keep) == ("adamw_torch", False)
    assert "schedule" in line and "fresh optimizer states" in line
    assert resume_optimizer("adamw_torch_fused", "adamw_torch", cuda=False) == (
        "adamw_torch",
        True,
        "",
    )
    assert resume_optimizer(None, "adamw_torch", cuda=False) == ("adamw_torch", True, "")


def test_dropped_optimizer_states_keep_the_step_and_the_schedule(tiny_model_dir, tmp_path):
    """A real Trainer resumed from an SGD checkpoint by AdamW without its states trains on
    from the saved step at the schedule's rate (loading the states would crash it)."""
    from engine.plan import load_plan
    from engine.train.backends import Setup, build_trainer
    from engine.train.checkpoints import load_schedule_only
    from tests.engine.training import write_facts, write_plan

    plan = load_plan(
        write_plan(tmp_path, tiny_model_dir, write_facts(tmp_path), lr_scheduler="linear")
    )
    rows = [{"input_ids": [5, 6, 7, 8], "labels": [-100, 6, 7, 8]}] * 16

    def trainer(optimizer: str, steps: int):
        setup = Setup("hf", "cpu", "fp32", optimizer, 4, 1, steps, "padded", save=True)
        return build_trainer(plan, setup, rows, tmp_path)[0]

    first = trainer("sgd", 4)
    first.args.save_steps = 2
    first.train()
    resumed = trainer("adamw_torch", 4)
    load_schedule_only(resumed)
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoints" / "checkpoint-2"))
    assert resumed.state.global_step == 4
    assert resumed.lr_scheduler.last_epoch == 4
    assert all("exp_avg" in s for s in resumed.optimizer.state.values())


def test_unsloth_pads_micro_batches_to_64_tokens_only_on_launch_bound_cards(monkeypatch):
    """Multiples of 64 bound torch.compile's shapes on an H100/H200 (measured 1.09x); cards
    where arithmetic bounds the step, rebatch = false and the hf backend keep exact lengths;
    STILLROOM_PAD_MULTIPLE overrides it, 0 turning it off."""
    import pytest

    from engine.errors import UserError
    from engine.train.job import PAD_ENV, choose_pad_multiple

    monkeypatch.delenv(PAD_ENV, raising=False)
    assert choose_pad_multiple("unsloth", "padded", True, "NVIDIA H200") == 64
    assert choose_pad_multiple("unsloth", "padded", True, "Tesla T4") is None
    assert choose_pad_multiple("unsloth", "padded", False, "NVIDIA H200") is None
    assert choose_pad_multiple("unsloth", "padding_free", True, "NVIDIA H200") is None
    assert choose_pad_multiple("hf", "padded", True, "NVIDIA H200") is None
    assert choose_pad_multiple("unsloth", "padded", True, False) is None
    monkeypatch.setenv(PAD_ENV, "0")
    assert choose_pad_multiple("unsloth", "padded", True, "NVIDIA H200") is None
    monkeypatch.setenv(PAD_ENV, "128")
    assert choose_pad_multiple("unsloth", "padded", True, "Tesla T4") == 128
    monkeypatch.setenv(PAD_ENV, "lots")
    with pytest.raises(UserError):
        choose_pad_multiple("unsloth", "padded", True, "NVIDIA H200")


def test_the_run_log_does_not_count_a_ranks_wait_for_the_slowest_as_stillrooms_own_work():
    """A rank's agreement mostly waits for the slower rank: named apart, not in the share."""
    from engine.train.overhead import OverheadMeter, describe

    meter = OverheadMeter()
    meter.seconds.update(collator=0.01, callbacks=0.01, agreement=1.25)
    report = meter.report(10, 1.0)
    assert report["total_ms"] == 2.0 and report["share"] == 0.002
    line = describe(report)
    assert line.startswith("Stillroom's own work per step: 2.00 ms (0.20 % of a 1000 ms step)")
    assert "agreement 125" not in line and "slowest rank, took 125.00 ms a step." in line
