"""The plan file: defaults, TOML round-trip, and messages a user can act on."""

from __future__ import annotations

import pytest

from engine.plan import Plan, PlanError, load_plan, save_plan


def test_defaults_are_the_reference_notebook():
    plan = Plan()
    assert plan.student.model == "unsloth/Qwen2.5-1.5B-Instruct"
    assert plan.student.load_in_4bit and plan.student.max_seq_length == 2048
    assert (plan.lora.r, plan.lora.alpha, plan.lora.dropout) == (16, 16, 0.0)
    assert len(plan.lora.target_modules) == 7
    t = plan.training
    assert (t.max_steps, t.batch_size, t.grad_accum, t.learning_rate) == (60, 2, 4, 2e-4)
    assert (t.warmup_steps, t.optimizer, t.weight_decay, t.seed) == (5, "adamw_8bit", 0.01, 3407)


def test_round_trip_full_and_changes_only(tmp_path):
    plan = Plan.model_validate({"training": {"max_steps": 100}, "lora": {"r": 32}})
    for only_changes in (False, True):
        path = tmp_path / f"plan-{only_changes}.toml"
        save_plan(plan, path, only_changes=only_changes)
        assert load_plan(path) == plan
    text = (tmp_path / "plan-True.toml").read_text()
    assert "r = 32" in text and "max_steps = 100" in text and "batch_size" not in text


def test_epochs_replace_the_step_budget(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[training]\nepochs = 3\n")
    plan = load_plan(path)
    assert plan.training.epochs == 3 and plan.training.max_steps is None
    save_plan(plan, path)
    assert load_plan(path) == plan


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[training]\nbatch_size = 0\n",
            "training.batch_size: Input should be greater than or equal to 1 (got 0)",
        ),
        ("[training]\nbach_size = 4\n", "training.bach_size: unknown key"),
        (
            "[student]\nbackend = 'tpu'\n",
            "student.backend: must be one of 'auto', 'unsloth' or 'hf' (got 'tpu')",
        ),
        ("[training]\nmax_steps = 10\nepochs = 1\n", "training: set max_steps or epochs, not both"),
        ("[lora]\ndropout = 1.5\n", "lora.dropout: Input should be less than 1 (got 1.5)"),
        ("[teacher]\napi_key_env = 'sk-abc123'\n", "teacher.api_key_env: looks like an API key"),
        ("[output]\nname = 'my run/1'\n", "output.name: String should match pattern"),
        ("[training\nmax_steps = 1\n", "not valid TOML"),
    ],
)
def test_bad_plans_name_the_key_and_the_allowed_values(tmp_path, toml, expected):
    path = tmp_path / "plan.toml"
    path.write_text(toml)
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert any(expected in line for line in caught.value.problems), caught.value.problems


def test_every_fault_is_reported_at_once(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text("[training]\nbatch_size = 0\ngrad_accum = 0\n[lora]\nr = 0\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert len(caught.value.problems) == 3


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(PlanError, match="file not found"):
        load_plan(tmp_path / "nope.toml")


def test_a_plan_never_holds_a_key_only_its_variable_name():
    plan = Plan()
    text = plan.to_toml()
    assert 'api_key_env = "DEEPSEEK_API_KEY"' in text
    assert "api_key =" not in text


def test_fingerprint_tells_plans_apart():
    assert Plan().fingerprint() == Plan().fingerprint()
    assert Plan().fingerprint() != Plan.model_validate({"lora": {"r": 8}}).fingerprint()
