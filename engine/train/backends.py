"""The two ways to train one plan: Unsloth (fast path on CUDA) and plain HF/PEFT.

Both take the same already rendered rows (``input_ids`` + ``labels`` with -100
outside assistant turns), so masking, the chat template and the single
end-of-turn are decided once, by the engine, not by either library.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.plan import Plan
from engine.train.checkpoints import checkpoints_dir

# Batching modes. ``padded`` never lets samples see each other; the other two
# rely on the attention kernel honouring sequence boundaries (Unsloth only).
BATCHING = ("padded", "padding_free", "packed")


@dataclass(frozen=True)
class Setup:
    """Everything decided about a run before the model loads."""

    backend: str  # unsloth | hf
    device: str  # cuda | cpu
    precision: str  # bf16 | fp16 | fp32
    optimizer: str
    micro_batch: int  # per process
    grad_accum: int  # per process
    max_steps: int
    batching: str  # one of BATCHING
    group_by_length: bool = False  # similar lengths per micro-batch; off = the notebook's sampling
    planned_steps: int = 0  # the full run's steps, also when this is a short probe
    save: bool = True
    checkpointing: str = "unsloth"  # GPU only: unsloth (offloaded) | on | off; see memory.py
    checkpointing_reason: str = ""  # why, for the run log
    pad_multiple: int | None = None  # unsloth, padded: pad micro-batches to a multiple of this
    processes: int = 1  # DDP ranks (engine.train.distributed); samples a step = micro x accum x this


def precision_for(plan: Plan, cuda: bool) -> str:
    """bf16 where the card has it, fp16 on older cards (T4); on CPU see :func:`_cpu_precision`."""
    wanted = plan.student.dtype
    if not cuda:
        return _cpu_precision(wanted)
    if wanted == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}[wanted]


def _cpu_precision(wanted: str) -> str:
    """fp32, unless the plan asks for bfloat16 and the CPU computes it natively (AVX512-BF16,
    AMX): then bf16, 1.4x faster a step for SmolLM2-135M on the 2-core box (4.5 s against
    6.5 s, a loss within 2 %). Where bf16 would only be emulated, fp32 stays."""
    if wanted != "bfloat16":
        return "fp32"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private probe: absent means "don't know"
        native = False
    return "bf16" if native else "fp32"


def _torch_dtype(precision: str) -> torch.dtype:
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def training_arguments(plan: Plan, setup: Setup, run_dir: Path) -> dict[str, Any]:
    """Arguments shared by transformers' TrainingArguments and TRL's SFTConfig."""
    t = plan.training
    return dict(
        output_dir=str(checkpoints_dir(run_dir)),
        per_device_train_batch_size=setup.micro_batch,
        gradient_accumulation_steps=setup.grad_accum,
        max_steps=setup.max_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_steps,
        optim=setup.optimizer,
        weight_decay=t.weight_decay,
        seed=t.seed,
        logging_steps=t.logging_steps,
        save_strategy="steps" if setup.save else "no",
        save_steps=t.save_steps,
        save_total_limit=2,
        bf16=setup.precision == "bf16",
        use_cpu=setup.device == "cpu",  # else transformers refuses bf16 without a GPU
        fp16=setup.precision == "fp16",
        report_to="none",
        logging_nan_inf_filter=False,  # a NaN loss must reach the NaN check, not be averaged away
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        # Every LoRA weight takes part in every step: DDP need not search for unused ones.
        ddp_find_unused_parameters=False if setup.processes > 1 else None,
        # Similar lengths in one micro-batch: far less padding, same samples per step.
        train_sampling_strategy="group_by_length"
        if setup.group_by_length and setup.batching == "padded" and setup.micro_batch > 1
        else "random",
    )


def build_trainer(plan: Plan, setup: Setup, rows: list[dict[str, list[int]]], run_dir: Path):
    """Load the student, add LoRA and return ``(trainer, tokenizer)`` ready to train."""
    from datasets import Dataset

    dataset = Dataset.from_dict(
        {"input_ids": [r["input_ids"] for r in rows], "labels": [r["labels"] for r in rows]}
    )
    if setup.backend == "unsloth":
        return _unsloth_trainer(plan, setup, dataset, run_dir)
    return _hf_trainer(plan, setup, dataset, run_dir)


def _unsloth_trainer(plan: Plan, setup: Setup, dataset, run_dir: Path):
    from trl import SFTConfig, SFTTrainer
    from unsloth import FastLanguageModel  # imported first by the child already

    s, lora = plan.student, plan.lora
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=s.model,
        max_seq_length=s.max_seq_length,
        dtype=_torch_dtype(setup.precision),
        load_in_4bit=s.load_in_4bit,
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=lora.r,
        target_modules=list(lora.target_modules),
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        bias="none",
        use_gradient_checkpointing={"unsloth": "unsloth", "on": True, "off": False}[
            setup.checkpointing
        ],
        random_state=plan.training.seed,
        max_seq_length=s.max_seq_length,
        temporary_location=str(run_dir / "unsloth_tmp"),
    )
    config = SFTConfig(
        **training_arguments(plan, setup, run_dir),
        max_length=s.max_seq_length,
        packing=setup.batching == "packed",
        padding_free=setup.batching != "padded",
        pad_to_multiple_of=setup.pad_multiple,
        dataset_num_proc=1,
        # SFTConfig turns the trainer's own checkpointing on unless told otherwise.
        gradient_checkpointing=setup.checkpointing != "off",
    )
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer
    )
    return trainer, tokenizer


def _hf_trainer(plan: Plan, setup: Setup, dataset, run_dir: Path):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        set_seed,
    )
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    s, lora = plan.student, plan.lora
    if setup.batching != "padded":
        # Plain SDPA/eager attention would let packed samples attend to each other.
        raise ValueError("the hf backend trains padded batches only")
    tokenizer = AutoTokenizer.from_pretrained(s.model)
    dtype = _torch_dtype(setup.precision)
    kwargs: dict[str, Any] = {"dtype": dtype}
    quantized = setup.device == "cuda" and s.load_in_4bit
    if quantized:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": torch.cuda.current_device()}  # the rank's card
    elif setup.device == "cuda":
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    model = AutoModelForCausalLM.from_pretrained(s.model, **kwargs)
    checkpointing = setup.checkpointing != "off"
    if quantized:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif setup.device == "cuda" and checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    # LoRA's A matrices start random (B at zero, so the first loss hides it): the plan's seed
    # must draw them, or the same plan trains to a different adapter every time.
    set_seed(plan.training.seed)
    model = get_peft_model(
        model,
        LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        ),
    )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    trainer = Trainer(
        model=model,
        args=TrainingArguments(**training_arguments(plan, setup, run_dir)),
        train_dataset=dataset,
        data_collator=DataCollatorForLanguageModeling(pad_token_id=pad_id, pad_to_multiple_of=8),
    )
    return trainer, tokenizer


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit packed weights counted as stored."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
