"""Presets by GPU memory: each one fits the card it is for."""

from __future__ import annotations

import pytest

from engine.plan import Plan
from engine.train.memory import estimate
from engine.train.presets import PRESETS, get_preset, preset_for


@pytest.mark.parametrize(
    ("gpu_mb", "name"),
    [
        (None, "cpu-small"),
        (15360, "t4-15gb"),
        (23028, "24gb"),
        (40960, "40-80gb"),
        (81559, "40-80gb"),
    ],
)
def test_each_card_gets_its_preset(gpu_mb, name):
    assert preset_for(gpu_mb).name == name


@pytest.mark.parametrize("preset", [p for p in PRESETS if p.min_gpu_mb > 0], ids=lambda p: p.name)
@pytest.mark.parametrize("backend", ["unsloth", "hf"])
def test_gpu_presets_fit_the_smallest_card_they_are_for(preset, backend):
    smallest = {"t4-15gb": 15360, "24gb": 22500, "40-80gb": 40960}[preset.name]
    result = estimate(preset.apply(Plan()), gpu_total_mb=smallest, backend=backend)
    assert result.verdict == "fits", result.summary()


def test_the_t4_preset_is_the_reference_notebook():
    assert get_preset("t4-15gb").apply(Plan()) == Plan()


def test_presets_keep_samples_per_step_and_other_choices():
    plan = Plan.model_validate({"lora": {"r": 64}, "training": {"learning_rate": 1e-4}})
    for preset in PRESETS[1:]:
        tuned = preset.apply(plan)
        assert tuned.training.batch_size * tuned.training.grad_accum == 8
        assert (tuned.lora.r, tuned.training.learning_rate) == (64, 1e-4)
        assert preset.why and "\n" not in preset.why


def test_cpu_preset_trains_a_small_student_in_full_precision_with_plain_transformers(
    tmp_path, monkeypatch
):
    """The CPU preset changes the student too: a 1.5B model would take minutes a step."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    plan = get_preset("cpu-small").apply(Plan())
    assert (plan.student.backend, plan.student.load_in_4bit) == ("hf", False)
    assert plan.student.model == "HuggingFaceTB/SmolLM2-135M-Instruct"

    folder = tmp_path / "stillroom" / "models" / "SmolLM2-135M-Instruct"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert get_preset("cpu-small").apply(Plan()).student.model == str(folder)


def test_an_unknown_preset_lists_the_real_ones():
    from engine.errors import UserError

    with pytest.raises(UserError) as caught:
        get_preset("a100")
    assert "t4-15gb" in caught.value.hint
