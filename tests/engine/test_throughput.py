"""Model FLOPs utilisation and the card classes it is read against."""

from __future__ import annotations

import pytest

from engine.train.throughput import mfu, overhead_bound, peak_tflops


def test_mfu_is_six_n_tokens_over_the_cards_dense_peak():
    """10,000 tokens/s of a 1.54 B model on an H200 (989 TFLOP/s) is 9.4 %."""
    assert mfu(1_543_714_304, 10_000, peak_tflops("NVIDIA H200")) == pytest.approx(0.0937, abs=1e-4)


def test_an_unknown_card_or_no_rate_gives_no_mfu():
    assert peak_tflops("Some Future GPU") is None
    assert mfu(1_000, 10.0, None) is None
    assert mfu(1_000, None, 989.0) is None


def test_specific_names_win_over_their_family():
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops("NVIDIA L40S") == 362.0 and peak_tflops("NVIDIA L4") == 121.0


def test_only_hopper_class_cards_count_as_launch_bound():
    assert overhead_bound("NVIDIA H200") and overhead_bound("NVIDIA H100 80GB HBM3")
    assert not overhead_bound("Tesla T4") and not overhead_bound("cpu")
