"""A tiny Qwen2.5-style student built offline: the demo's last resort, and the tests' student.

The tokenizer is a real byte-level BPE (trained here on a few paragraphs) with
Qwen2.5's ChatML special tokens and Qwen2.5-Instruct's own chat template; the
model is a randomly initialised two-layer Qwen2. Both are saved with
``save_pretrained`` and meant to be loaded with ``from_pretrained``, the path a
user's hub model takes. Run ``python -m engine.tiny_model FOLDER`` to build one.
"""

from __future__ import annotations

import sys
from pathlib import Path

PAD = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

# Verbatim from Qwen/Qwen2.5-*-Instruct tokenizer_config.json (tools branch included).
QWEN25_CHAT_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

# Qwen2's pre-tokenizer split: contractions, letters, single digits, punctuation, newlines.
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_CORPUS = """\
Give three tips for staying healthy.
Eat a balanced diet with plenty of fruits and vegetables.
Exercise regularly to keep your body active and strong. Get enough sleep every night.

What are the three primary colors? The three primary colors are red, blue, and yellow.

Describe the structure of an atom. An atom is made up of a nucleus, which contains protons
and neutrons, surrounded by electrons that travel in orbits around the nucleus.

How can we reduce air pollution? There are a number of ways to reduce air pollution, such as
shifting to renewable energy sources, encouraging the use of public transportation, and
prohibiting the burning of fossil fuels.

Write a short story about a robot who learns to paint. Once upon a time, in a quiet city,
there lived a small robot named Pixel. Every morning it watched the sunrise and wondered
what colours really meant. One day it found a brush and began to paint the sky.

Translate the following sentence into French: I would like a cup of coffee.

Explain why the sky is blue. Sunlight is scattered by the molecules in the air, and blue
light is scattered more than red light because it travels as shorter, smaller waves.

Summarise the article in two sentences.
The report says that sales rose by 12 percent in
2023, while costs fell. The company expects growth to continue next year.

Generate a list of five creative names for a coffee shop: Bean There, Brew Haven,
The Daily Grind, Steam and Story, Morning Ritual.

Compute the sum of 17 and 25. The answer is 42. What is 3 times 7? It is 21.

Write a Python function that returns the square of a number.

def square(x):
    return x * x
print(square(4))  # 16

Classify the following animals as mammals or reptiles: dog, snake, whale, lizard.
Mammals: dog, whale. Reptiles: snake, lizard.

Rewrite the sentence in the passive voice. The committee approved the new policy.
The new policy was approved by the committee.

You are a helpful assistant. I'm sure we'll find it; they've said it's here, haven't they?

Think step by step. First, read the question carefully. Then, reason about each option.
Finally, give the answer clearly and stop. Thank you for your question!

Plan a three-day trip to Lisbon on a budget. Day one: walk through Alfama, visit the castle
and watch the evening light over the river. Day two: take the tram to Belem, try the custard
tarts and see the monastery. Day three: relax at a beach near Cascais before flying home.

Why do leaves change colour in autumn? As the days get shorter, trees stop making
chlorophyll, the green pigment fades, and yellow and orange pigments become visible.

Convert 5 kilometres to miles. Five kilometres is about 3.1 miles.

Suggest a healthy breakfast: oatmeal with berries, yoghurt with honey, or whole-grain toast
with avocado and a boiled egg. Drink water, and keep sugary juice for special occasions.

Identify the verb in the sentence: The children played happily in the garden. Played.

Explain recursion to a beginner. A recursive function solves a problem by calling itself on
a smaller version of the same problem, until it reaches a simple case it can answer directly.

Write an email asking for a meeting next Tuesday. Dear Maria, could we meet next Tuesday at
10am to discuss the project timeline? Please let me know if another time suits you better.
Best regards, Daniel.

List the planets of the solar system in order: Mercury, Venus, Earth, Mars, Jupiter, Saturn,
Uranus, Neptune. Which one is the largest? Jupiter is the largest planet.
{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
"""


def _train_tokenizer(vocab_size: int):
    """A byte-level BPE shaped like Qwen2's: NFC, regex split, byte fallback for any text."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(
        add_prefix_space=False, trim_offsets=False, use_regex=False
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    return tokenizer


def build_tiny_tokenizer(vocab_size: int = 1024):
    """A ``PreTrainedTokenizerFast`` with Qwen2.5-Instruct's specials and chat template."""
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    backend = _train_tokenizer(vocab_size)
    # Like Qwen2.5, the specials come after the learnt vocabulary, and the tool tags are
    # added (single) tokens that are not special, so decoding keeps them.
    backend.add_special_tokens([AddedToken(t, normalized=False) for t in (PAD, IM_START, IM_END)])
    backend.add_tokens([AddedToken(t, normalized=False) for t in ("<tool_call>", "</tool_call>")])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=IM_END,
        pad_token=PAD,
        chat_template=QWEN25_CHAT_TEMPLATE,
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )


# Qwen2.5-1.5B-Instruct's layer shapes over the tiny tokenizer: random weights whose kernels,
# memory and speed on a GPU are the real student's, for GPU tests and benches (no download).
QWEN25_1_5B = {
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
}

TINY_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    # LoRA leaves the tied embeddings frozen, so their norm caps the logits: at width 64
    # and the usual 0.02 init no logit can pass ~1.3 and the loss stalls near 5.7 (greedy
    # answers right by a hair, flipping between runs). At 0.2 the tiny student learns.
    "initializer_range": 0.2,
}


def build_tiny_model(folder: str | Path, *, dtype: str | None = None, **config: float) -> Path:
    """Save a small random Qwen2 causal LM and its tokenizer in ``folder``; returns the folder.

    ``config`` overrides :data:`TINY_CONFIG` (e.g. a head size of 64 like the real models
    for GPU tests); ``dtype`` (e.g. ``"bfloat16"``) is the dtype the weights are saved in.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    folder = Path(folder)
    tokenizer = build_tiny_tokenizer()
    pad_id = tokenizer.convert_tokens_to_ids(PAD)
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        **{**TINY_CONFIG, **config},
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=pad_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    if dtype:
        model = model.to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(
        bos_token_id=pad_id, eos_token_id=[eos_id, pad_id], pad_token_id=pad_id
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m engine.tiny_model FOLDER")
    print(build_tiny_model(sys.argv[1]))
