"""Model FLOPs utilisation: how much of the card's matrix arithmetic a run uses.

MFU = 6 x parameters x tokens per second / the card's dense peak (bf16 or
fp16, no sparsity), the usual yardstick (PaLM, appendix B). For QLoRA the 6N
rule counts weight gradients the frozen base never computes and leaves out
recomputation under checkpointing, so read it as a comparison between runs of
one plan, not as an absolute. Peaks are the vendors' datasheet figures.
"""

from __future__ import annotations

# (substring of torch's device name, dense bf16/fp16 TFLOP/s). First match wins,
# so more specific names come first.
PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 6000 Ada", 364.0),
    ("A6000", 155.0),
    ("4090", 165.0),
    ("3090", 71.0),
    ("V100", 125.0),
    ("T4", 65.0),
)


def peak_tflops(device_name: str) -> float | None:
    """The card's dense bf16/fp16 peak, or None for a card not in the table."""
    for key, tflops in PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops
    return None


# At or above this peak a step of a small student is bound by launching kernels, not by
# arithmetic: on an H200 a 2,400-token step of Qwen2.5-1.5B kept the GPU 17 % busy, and
# its time hardly moved with the rows' lengths (docs/gpu.md).
OVERHEAD_BOUND_TFLOPS = 700.0


def overhead_bound(device_name: str) -> bool:
    """Whether padding is nearly free on this card, so row order need not serve it."""
    peak = peak_tflops(device_name)
    return peak is not None and peak >= OVERHEAD_BOUND_TFLOPS


def mfu(params: int, tokens_per_s: float | None, peak: float | None) -> float | None:
    """The share (0-1) of ``peak`` TFLOP/s that ``tokens_per_s`` uses, or None."""
    if not tokens_per_s or not peak:
        return None
    return round(6 * params * tokens_per_s / (peak * 1e12), 4)
