"""The memory estimate against peaks measured on a real GPU, and its verdicts.

To add a measured point, append one line to CALIBRATION: the plan overrides
the run used, its backend and batching, the rows' token profile, and torch's
``max_memory_reserved`` in GiB. The estimate must land within ERROR_BAND.
"""

from __future__ import annotations

import pytest

from engine.plan import Plan, PlanError, plan_from_dict
from engine.train.memory import (
    KNOWN_ARCHS,
    TokenProfile,
    choose_batching,
    choose_checkpointing,
    estimate,
    micro_batch_tokens,
    resolve_arch,
    with_change,
)

ERROR_BAND = 0.20

# Synthetic Alpaca rows of the 2026-11-27 H100 runs (shared/gpu/README.md): mean 294
# tokens, p90 521, p99 1115, max 1309; p95 interpolated between p90 and p99.
ALPACA_SYNTH = TokenProfile(max=1309, p95=851, mean=294.3)
QWEN15_QLORA = {"student": {"model": "unsloth/Qwen2.5-1.5B-Instruct"}}
EIGHT_BY_ONE = {"batch_size": 8, "grad_accum": 1}

# (name, plan overrides, backend, batching, rows, measured peak reserved GiB)
CALIBRATION = [
    ("unsloth 2x4 padding-free", {}, "unsloth", "padding_free", ALPACA_SYNTH, 1.799),
    ("unsloth 2x4 padded", {}, "unsloth", "padded", ALPACA_SYNTH, 1.791),
    ("unsloth 2x4 packed", {}, "unsloth", "packed", ALPACA_SYNTH, 1.809),
    ("unsloth 8x1 padding-free", {"batch_size": 8, "grad_accum": 1}, "unsloth", "padding_free", ALPACA_SYNTH, 1.770),
    ("unsloth 8x1 padded", {"batch_size": 8, "grad_accum": 1}, "unsloth", "padded", ALPACA_SYNTH, 2.850),
    ("hf 2x4 padded", {}, "hf", "padded", ALPACA_SYNTH, 2.303),
    ("hf 8x1 padded", {"batch_size": 8, "grad_accum": 1}, "hf", "padded", ALPACA_SYNTH, 5.559),
    # Stillroom's own runs (bench/gpu_train_bench.py, H100, 2026-11-28): length-grouped
    # batches draw the longest rows together, so these peaks are the data's worst case.
    ("stillroom 2x4 grouped", {}, "unsloth", "padded", ALPACA_SYNTH, 2.061),
    ("stillroom 8x1 grouped", {"batch_size": 8, "grad_accum": 1}, "unsloth", "padded", ALPACA_SYNTH, 3.496),
    ("stillroom 8x1 padding-free", {"batch_size": 8, "grad_accum": 1}, "unsloth", "padding_free", ALPACA_SYNTH, 1.971),
    ("stillroom 8x1 packed", {"batch_size": 8, "grad_accum": 1}, "unsloth", "packed", ALPACA_SYNTH, 4.666),
    # After the child set expandable segments before CUDA starts, as the notebook has them.
    ("stillroom 2x4 padding-free", {}, "unsloth", "padding_free", ALPACA_SYNTH, 1.779),
    # Each checkpointing mode at 8 x 1 padded, H200, 2026-11-30 (bench/gpu_train_bench.py;
    # "on" from raw Unsloth in issue 12); the off run's largest micro-batch held 10,432 tokens.
    ("stillroom 8x1 checkpointing off", {**EIGHT_BY_ONE, "gradient_checkpointing": "off"}, "unsloth", "padded", ALPACA_SYNTH, 18.305),
    ("unsloth 8x1 checkpointing on", {**EIGHT_BY_ONE, "gradient_checkpointing": "on"}, "unsloth", "padded", ALPACA_SYNTH, 3.57),
    ("stillroom 8x1 fp16 offloaded (T4 emulation)", {**EIGHT_BY_ONE, "gradient_checkpointing": "unsloth"}, "unsloth", "padded", ALPACA_SYNTH, 2.832),
]  # fmt: skip


def _calibrated(training, backend, batching, rows):
    plan = plan_from_dict({**QWEN15_QLORA, "training": training})
    return estimate(plan, rows_tokens=rows, backend=backend, batching=batching)


@pytest.mark.parametrize(
    ("name", "training", "backend", "batching", "rows", "measured_gib"), CALIBRATION
)
def test_estimate_is_within_the_band_of_measured_peaks(
    name, training, backend, batching, rows, measured_gib
):
    predicted_gib = _calibrated(training, backend, batching, rows).torch_reserved_mb / 1024
    error = predicted_gib / measured_gib - 1
    print(
        f"{name:26s} measured {measured_gib:.2f} GiB  estimated {predicted_gib:.2f} GiB  {error:+.1%}"
    )
    assert abs(error) <= ERROR_BAND


def test_estimate_ranks_the_measured_configs_like_the_gpu_did():
    """The three clearly different peaks (Unsloth 2x4 < HF 2x4 < HF 8x1) keep their order."""
    by_name = {row[0]: _calibrated(*row[1:5]).torch_reserved_mb for row in CALIBRATION}
    assert by_name["unsloth 2x4 padded"] < by_name["hf 2x4 padded"] < by_name["hf 8x1 padded"]
    assert by_name["unsloth 8x1 padded"] < by_name["hf 8x1 padded"]


def test_qwen15_weights_match_the_measured_load_peak():
    """After loading in 4-bit (plus the fp32 adapter) torch held 1.14-1.17 GiB."""
    parts = estimate(Plan(), backend="hf")
    adapter_mb = 18_464_768 * 4 / 2**20  # trainable parameters the runs reported
    assert 1.10 < (parts.weights_mb + adapter_mb) / 1024 < 1.20


def test_lora_parameter_count_matches_peft():
    """r=16 on all seven projections of Qwen2.5-1.5B: PEFT reported 18,464,768 trainable."""
    base = estimate(Plan(), backend="hf", rows_tokens=ALPACA_SYNTH)
    bigger = estimate(with_change(Plan(), "lora.r", 32), backend="hf", rows_tokens=ALPACA_SYNTH)
    per_param_bytes = 8 + 2  # fp32 weight and grad, 8-bit Adam states
    assert base.lora_mb == pytest.approx(18_464_768 * per_param_bytes / 2**20)
    assert bigger.lora_mb == pytest.approx(2 * base.lora_mb)


def test_seven_b_student_in_bf16_will_not_fit_a_t4_and_suggestions_really_fit():
    plan = plan_from_dict(
        {
            "student": {"model": "unsloth/Qwen2.5-7B-Instruct", "load_in_4bit": False},
            "training": {"batch_size": 8, "grad_accum": 1, "optimizer": "adamw_torch"},
        }
    )
    result = estimate(plan, gpu_total_mb=15360, backend="hf")
    assert result.verdict == "will_not_fit"
    assert result.suggestions
    for suggestion in result.suggestions:
        again = estimate(suggestion.apply(plan), gpu_total_mb=15360, backend="hf")
        assert again.verdict == "fits", str(suggestion)
    # No one change is enough: 4-bit and 8-bit Adam first, then smaller micro-batches.
    assert str(result.suggestions[0]).startswith(
        "load_in_4bit False -> True and optimizer adamw_torch -> adamw_8bit and batch_size 8 -> "
    )


def test_a_smaller_batch_suggestion_keeps_samples_per_step():
    plan = plan_from_dict({"training": {"batch_size": 16, "grad_accum": 1}})
    result = estimate(plan, gpu_total_mb=8192, backend="hf")
    (batch,) = next(
        s.changes for s in result.suggestions if s.changes[0].key.endswith("batch_size")
    )
    assert str(batch) == f"batch_size 16 -> {batch.new} (grad_accum 1 -> {16 // batch.new})"


def test_free_memory_on_a_shared_card_decides_the_verdict():
    plan = Plan()
    assert estimate(plan, gpu_total_mb=81559, backend="hf").verdict == "fits"
    crowded = estimate(plan, gpu_total_mb=81559, gpu_free_mb=3000, backend="hf")
    assert crowded.verdict == "will_not_fit"
    assert "of 2.9 GB: will not fit; try" in crowded.summary()


def test_a_tight_fit_is_flagged_before_it_overflows():
    peak = estimate(Plan(), backend="hf").peak_mb
    assert estimate(Plan(), gpu_total_mb=peak * 1.05, backend="hf").verdict == "tight"
    assert estimate(Plan(), gpu_total_mb=peak * 0.95, backend="hf").verdict == "will_not_fit"


def test_long_rows_cost_more_only_until_max_seq_length_cuts_them():
    long_rows = TokenProfile(max=8000, p95=3000, mean=900)
    assert micro_batch_tokens(4, 2048, long_rows, "padded") == 4 * 2048
    assert micro_batch_tokens(4, 16384, long_rows, "padded") == 4 * 8000
    assert micro_batch_tokens(4, 16384, long_rows, "padding_free") == 8000 + 3 * 900
    assert micro_batch_tokens(4, 2048, None, "padded") == 4 * 2048


def test_a_token_profile_of_short_rows_lowers_the_estimate():
    without = estimate(Plan(), backend="hf")
    lengths = [200] * 95 + [400] * 5
    with_rows = estimate(Plan(), backend="hf", rows_tokens=lengths)
    assert with_rows.tokens == 2 * 400
    assert with_rows.peak_mb < without.peak_mb


def test_unchunked_logits_dominate_for_a_big_vocabulary():
    """Plain transformers materialises fp32 logits for every token: 151,936 wide."""
    chunked = estimate(Plan(), backend="hf")
    full = estimate(Plan(), backend="hf", chunked_logits=False)
    assert full.logits_mb == pytest.approx(2 * 2048 * 151936 * 10 / 2**20)
    assert full.logits_mb > full.activations_mb > chunked.logits_mb


def test_choose_batching_prefers_fewer_larger_micro_batches_at_the_same_samples():
    plan = Plan()  # 2 x 4
    assert choose_batching(plan, 81559, ALPACA_SYNTH, backend="unsloth") == (8, 1)
    assert choose_batching(plan, None, ALPACA_SYNTH) == (2, 4)
    # A 7B student in bf16 with long rows on a 24 GB card: 8 x 1 does not fit, 2 x 4 stays.
    big = plan_from_dict({"student": {"model": "Qwen/Qwen2.5-7B-Instruct", "load_in_4bit": False}})
    assert choose_batching(big, 23028, backend="hf") == (2, 4)


def test_architectures_come_from_a_local_config(tmp_path):
    (tmp_path / "config.json").write_text(
        '{"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128,'
        ' "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,'
        ' "vocab_size": 1024, "tie_word_embeddings": true}'
    )
    arch, source = resolve_arch(str(tmp_path))
    assert source == "config.json"
    assert (arch.hidden, arch.layers, arch.vocab, arch.kv_dim) == (64, 2, 1024, 32)


def test_known_students_resolve_without_a_download():
    arch, source = resolve_arch("unsloth/Llama-3.2-1B-Instruct-bnb-4bit")
    assert (arch, source) == (KNOWN_ARCHS["llama-3.2-1b"], "built-in table")
    assert round(KNOWN_ARCHS["qwen2.5-1.5b"].params() / 1e9, 2) == 1.54
    assert round(KNOWN_ARCHS["qwen2.5-7b"].params() / 1e9, 1) == 7.6


def test_an_unknown_model_needs_a_size_and_says_so():
    from engine.errors import UserError

    with pytest.raises(UserError, match="cannot tell the size"):
        resolve_arch("someone/mystery-model-xl")
    arch, source = resolve_arch("someone/mystery-model-xl", params_b=3.0)
    assert "unknown architecture" in source and arch == KNOWN_ARCHS["qwen2.5-3b"]


def _eight_by_one(**training) -> Plan:
    return plan_from_dict({**QWEN15_QLORA, "training": {**EIGHT_BY_ONE, **training}})


def test_checkpointing_is_off_where_the_card_has_room_and_offloaded_on_a_t4():
    """A big card trains without recomputation; a 15 GB T4 keeps Unsloth's offloading."""
    big = choose_checkpointing(_eight_by_one(), 80 * 1024, ALPACA_SYNTH, backend="unsloth")
    t4 = choose_checkpointing(_eight_by_one(), 15 * 1024, ALPACA_SYNTH, backend="unsloth")
    assert big[0] == "off" and "80.0 GB" in big[1]
    assert t4[0] == "unsloth" and "15.0 GB" in t4[1]


def test_the_plan_key_overrides_the_choice_and_says_so():
    mode, reason = choose_checkpointing(
        _eight_by_one(gradient_checkpointing="on"), 80 * 1024, ALPACA_SYNTH, backend="unsloth"
    )
    assert mode == "on" and "training.gradient_checkpointing" in reason


def test_rebatch_false_keeps_the_notebooks_offloaded_checkpointing():
    plan = plan_from_dict({**QWEN15_QLORA, "training": {"rebatch": False}})
    mode, reason = choose_checkpointing(plan, 140 * 1024, ALPACA_SYNTH, backend="unsloth")
    assert mode == "unsloth" and "rebatch = false" in reason


def test_each_checkpointing_mode_costs_what_it_keeps_on_the_gpu():
    peaks = {
        mode: estimate(
            _eight_by_one(), rows_tokens=ALPACA_SYNTH, backend="unsloth", checkpointing=mode
        ).torch_reserved_mb
        for mode in ("unsloth", "on", "off")
    }
    assert peaks["unsloth"] < peaks["on"] < peaks["off"]


def test_an_unknown_checkpointing_mode_is_refused_with_the_choices():
    with pytest.raises(PlanError, match="gradient_checkpointing"):
        plan_from_dict({"training": {"gradient_checkpointing": "always"}})
