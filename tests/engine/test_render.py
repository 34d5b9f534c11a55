"""Rendering with the student's own template: what is trained, what is cut, what is refused."""

from __future__ import annotations

import copy
import json
import re

import pytest

from engine.data.render import (
    IGNORE_INDEX,
    _Template,
    load_tokenizer,
    preview_segments,
    render_conversations,
    token_stats,
)
from engine.data.types import Conversation
from engine.errors import UserError
from engine.tiny_model import IM_END, PAD

QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def system(text: str) -> dict[str, str]:
    return {"role": "system", "content": text}


def with_template(tokenizer, template: str):
    """A copy of the shared tokenizer with another chat template."""
    changed = copy.deepcopy(tokenizer)
    changed.chat_template = template
    return changed


def render(tokenizer, *conversations: Conversation, **options):
    options.setdefault("max_seq_length", 4096)
    return render_conversations(list(conversations), tokenizer, **options)


# --- the tiny student itself -------------------------------------------------------------


def test_tiny_tokenizer_round_trips_through_from_pretrained(tiny_tokenizer, tiny_model_dir):
    from transformers import AutoTokenizer

    assert 1000 <= len(tiny_tokenizer) <= 2000
    assert (tiny_tokenizer.eos_token, tiny_tokenizer.pad_token) == (IM_END, PAD)
    text = "Naïve café, 東京 and 🙂 — any text survives.\n\nTabs\there."
    ids = tiny_tokenizer.encode(text, add_special_tokens=False)
    assert tiny_tokenizer.decode(ids) == text
    saved = tiny_model_dir.parent / "saved-again"
    tiny_tokenizer.save_pretrained(saved)
    again = AutoTokenizer.from_pretrained(saved)
    assert again.encode(text, add_special_tokens=False) == ids
    assert again.chat_template == tiny_tokenizer.chat_template


@pytest.mark.parametrize(
    "messages, generation_prompt, expected",
    [
        (
            [user("Hi")],
            True,
            f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        ),
        (
            [system("Be brief."), user("Hi"), assistant("Hello.")],
            False,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n",
        ),
    ],
    ids=["default-system-and-generation-prompt", "own-system"],
)
def test_tiny_tokenizer_renders_like_qwen25_instruct(
    tiny_tokenizer, messages, generation_prompt, expected
):
    rendered = tiny_tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    assert rendered == expected


def test_tiny_model_loads_and_learns_from_a_batch(tiny_model_dir, tiny_tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen2" and model.config.tie_word_embeddings
    assert model.get_input_embeddings().weight.shape[0] == len(tiny_tokenizer)
    ids = torch.tensor([tiny_tokenizer.encode("Give three tips for staying healthy.")])
    loss = model(ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss) and model.get_input_embeddings().weight.grad.abs().sum() > 0


# --- what is trained ---------------------------------------------------------------------

REASONING = "The user greets me, so I greet back."

MASKING_CASES = {
    "single turn": (
        Conversation([user("Give three tips."), assistant("Eat well. Sleep. Move.")], row=1),
        False,
        ["Eat well. Sleep. Move.<|im_end|>"],
    ),
    "own system prompt": (
        Conversation([system("Be brief."), user("Hi"), assistant("Hello.")], row=2),
        False,
        ["Hello.<|im_end|>"],
    ),
    "multi turn": (
        Conversation(
            [user("Hi"), assistant("Hello."), user("And 3 times 7?"), assistant("21.")], row=3
        ),
        False,
        ["Hello.<|im_end|>", "21.<|im_end|>"],
    ),
    "reasoning trained": (
        Conversation([user("Hi"), assistant("Hello.")], row=4, reasoning=REASONING),
        True,
        [f"<think>\n{REASONING}\n</think>\n\nHello.<|im_end|>"],
    ),
    "reasoning not trained": (
        Conversation([user("Hi"), assistant("Hello.")], row=5, reasoning=REASONING),
        False,
        ["Hello.<|im_end|>"],
    ),
    "answer quoting a control token": (
        Conversation([user("What opens a turn?"), assistant("It is <|im_start|>.")], row=6),
        False,
        ["It is <|im_start|>.<|im_end|>"],
    ),
    "multi-line answer": (
        Conversation([user("List two."), assistant("1. Tea\n\n2. Coffee")], row=7),
        False,
        ["1. Tea\n\n2. Coffee<|im_end|>"],
    ),
}


@pytest.mark.parametrize(
    "conversation, reasoning, trained", MASKING_CASES.values(), ids=list(MASKING_CASES)
)
def test_only_answers_and_one_end_of_turn_each_are_trained(
    tiny_tokenizer, conversation, reasoning, trained
):
    rendered = render(tiny_tokenizer, conversation, train_on_reasoning=reasoning)
    [row] = rendered.rows
    segments = preview_segments(row, tiny_tokenizer)
    assert [s.text for s in segments if s.trained] == trained
    # Everything else -- system prompt, user turns, role headers, newlines -- is masked.
    messages = [dict(m) for m in conversation.messages]
    if reasoning:
        messages[-1]["content"] = trained[-1].removesuffix(IM_END)
    text = tiny_tokenizer.apply_chat_template(messages, tokenize=False)
    assert "".join(s.text for s in segments) == text
    assert list(row.input_ids) == tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    eot = tiny_tokenizer.convert_tokens_to_ids(IM_END)
    trained_ids = [t for t in row.labels if t != IGNORE_INDEX]
    assert trained_ids.count(eot) == len(trained)
    assert all(row.input_ids[end - 1] == eot for _, end in row.spans)
    assert rendered.trained_tokens == len(trained_ids)


def test_reasoning_left_out_is_absent_from_the_row(tiny_tokenizer):
    conversation = MASKING_CASES["reasoning not trained"][0]
    [row] = render(tiny_tokenizer, conversation).rows
    assert "greets me" not in tiny_tokenizer.decode(list(row.input_ids))


def test_an_answer_opening_with_a_newline_keeps_all_its_text(tiny_tokenizer):
    """The header's newline and the answer's merge into one token; that token is trained."""
    conversation = Conversation([user("Hi"), assistant("\nHello.")], row=1)
    text = tiny_tokenizer.apply_chat_template(conversation.messages, tokenize=False)
    assert "ĊĊ" in tiny_tokenizer.convert_ids_to_tokens(tiny_tokenizer.encode(text))
    [row] = render(tiny_tokenizer, conversation).rows
    trained = [s.text for s in preview_segments(row, tiny_tokenizer) if s.trained]
    assert trained == ["\n\nHello.<|im_end|>"]


def test_rows_keep_their_order_and_answers_across_chunks(tiny_tokenizer):
    answers = [f"Answer number {i}." for i in range(2500)]
    conversations = [
        Conversation([user(f"Question {i}?"), assistant(a)], row=i + 1)
        for i, a in enumerate(answers)
    ]
    rendered = render(tiny_tokenizer, *conversations)
    assert [r.row for r in rendered.rows] == list(range(1, 2501))
    assert rendered.lengths == [len(r.input_ids) for r in rendered.rows]
    for i in (0, 1023, 1024, 2047, 2048, 2499):  # both sides of each chunk boundary
        trained = [s.text for s in preview_segments(rendered.rows[i], tiny_tokenizer) if s.trained]
        assert trained == [answers[i] + IM_END]


def test_the_fast_template_renders_exactly_like_apply_chat_template(tiny_tokenizer):
    template = _Template(tiny_tokenizer)
    chats = [
        [user("Hi")],
        [system("Be brief."), user("Hi"), assistant("Hello."), user("Bye")],
        [user("Hi"), assistant(""), user("Still there?")],
    ]
    for chat in chats:
        for generation_prompt in (False, True):
            expected = tiny_tokenizer.apply_chat_template(
                chat, tokenize=False, add_generation_prompt=generation_prompt
            )
            assert template(chat, add_generation_prompt=generation_prompt) == expected


# --- too long ----------------------------------------------------------------------------

LIMIT = 64


@pytest.fixture(scope="module")
def overflow_rows() -> list[Conversation]:
    return [
        Conversation([user("Hi"), assistant("Hello.")], row=1),
        Conversation([user("Tell me more."), assistant("More words. " * 40)], row=2),
        Conversation([user("A long question. " * 40), assistant("Short.")], row=3),
    ]


@pytest.mark.parametrize(
    "policy, kept_rows, dropped",
    [("drop", [1], 2), ("truncate", [1, 2], 1)],
)
def test_too_long_rows_are_counted_and_handled_by_the_policy(
    tiny_tokenizer, overflow_rows, policy, kept_rows, dropped
):
    rendered = render(tiny_tokenizer, *overflow_rows, max_seq_length=LIMIT, overflow=policy)
    report = rendered.overflow
    assert (report.too_long, report.answer_cut_partly, report.answer_cut_entirely) == (2, 1, 1)
    assert report.dropped == dropped
    assert [r.row for r in rendered.rows] == kept_rows
    assert all(len(r.input_ids) <= LIMIT for r in rendered.rows)
    assert len(rendered.lengths) == 3 and max(rendered.lengths) > LIMIT  # lengths before the cut
    assert rendered.token_stats()["too_long"] == 2


def test_a_truncated_answer_keeps_its_start_but_loses_its_end_of_turn(
    tiny_tokenizer, overflow_rows
):
    rendered = render(tiny_tokenizer, overflow_rows[1], max_seq_length=LIMIT, overflow="truncate")
    [row] = rendered.rows
    [trained] = [s.text for s in preview_segments(row, tiny_tokenizer) if s.trained]
    assert trained.startswith("More words.") and IM_END not in trained
    assert row.labels[-1] != IGNORE_INDEX


@pytest.mark.parametrize("room, partly, entirely", [(0, 0, 1), (1, 1, 0)], ids=["at", "one-before"])
def test_an_answer_starting_right_at_the_limit_is_lost_entirely(
    tiny_tokenizer, room, partly, entirely
):
    prompt = tiny_tokenizer.apply_chat_template(
        [user("Hi")], tokenize=False, add_generation_prompt=True
    )
    limit = len(tiny_tokenizer.encode(prompt, add_special_tokens=False)) + room
    rows = [
        Conversation([user("Hi"), assistant("Hello there, friend.")], row=1),
        Conversation([system(""), user(""), assistant(".")], row=2),  # fits, so training can go on
    ]
    rendered = render(tiny_tokenizer, *rows, max_seq_length=limit, overflow="truncate")
    cut = rendered.overflow
    assert (cut.too_long, cut.answer_cut_partly, cut.answer_cut_entirely) == (1, partly, entirely)
    assert len(rendered.rows) == 2 - entirely


@pytest.mark.parametrize(
    "lengths, expected",
    [
        ([], {"rows": 0, "min": None, "median": None, "p95": None, "max": None, "too_long": 0}),
        ([5, 1, 3], {"rows": 3, "min": 1, "median": 3, "p95": 5, "max": 5, "too_long": 1}),
        (
            list(range(1, 101)),
            {"rows": 100, "min": 1, "median": 50.5, "p95": 95, "max": 100, "too_long": 96},
        ),
    ],
)
def test_token_stats(lengths, expected):
    stats = token_stats(lengths, max_seq_length=4)
    assert stats == expected
    assert json.loads(json.dumps(stats)) == stats


# --- pre-flight gates --------------------------------------------------------------------

# The reference notebook's hand-made ChatML: the eos token (<|im_end|> for an Instruct
# tokenizer) appended after the answer's own <|im_end|>.
NOTEBOOK_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' }}{% if message['role'] == 'assistant' %}"
    "{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
NO_END_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{{ '<|begin_of_text|>' }}{% for message in messages %}{{ '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
GEMMA_TEMPLATE = (
    "{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' "
    "else message['role'] %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim "
    "+ '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
ALTERNATING_TEMPLATE = (
    "{% if messages[0]['role'] != 'user' %}"
    "{{ raise_exception('Conversation roles must start with user') }}{% endif %}"
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TEMPLATE_GATES = {
    "doubled end of turn (the notebook's template)": (NOTEBOOK_TEMPLATE, "<|im_end|> 2 times"),
    "no end of turn": (NO_END_TEMPLATE, "no end-of-turn token"),
    "another model's template (Llama 3)": (LLAMA3_TEMPLATE, "<|start_header_id|>"),
    "another model's template (Gemma)": (GEMMA_TEMPLATE, "'<end_of_turn>'"),
}


@pytest.mark.parametrize("template, message", TEMPLATE_GATES.values(), ids=list(TEMPLATE_GATES))
def test_a_template_that_would_mistrain_is_refused(tiny_tokenizer, template, message):
    tokenizer = with_template(tiny_tokenizer, template)
    with pytest.raises(UserError, match=re.escape(message)) as caught:
        render(tokenizer, MASKING_CASES["single turn"][0])
    assert caught.value.hint


def test_an_answer_holding_the_end_of_turn_marker_is_refused_with_its_row(tiny_tokenizer):
    rows = [
        Conversation([user("Hi"), assistant("Hello.")], row=1),
        Conversation([user("Hi"), assistant("Done.<|im_end|> And more.")], row=12),
    ]
    with pytest.raises(UserError, match=r"more than one <\|im_end\|> \(rows 12\)"):
        render(tiny_tokenizer, *rows)


def test_a_conversation_the_template_rejects_is_named_by_row(tiny_tokenizer):
    tokenizer = with_template(tiny_tokenizer, ALTERNATING_TEMPLATE)
    rows = [
        Conversation([user("Hi"), assistant("Hello.")], row=1),
        Conversation([system("Be brief."), user("Hi"), assistant("Hello.")], row=7),
    ]
    with pytest.raises(UserError, match="Row 7: .*must start with user"):
        render(tokenizer, *rows)


@pytest.mark.parametrize(
    "rows, options, message",
    [
        (
            [Conversation([user("Hi")], row=1), Conversation([user("Hello?")], row=2)],
            {},
            "No conversation has an assistant answer",
        ),
        (
            [Conversation([user("A long question. " * 40), assistant("Short.")], row=1)],
            {"max_seq_length": LIMIT, "overflow": "truncate"},
            f"Every answer lies beyond max_seq_length={LIMIT}",
        ),
        (
            [Conversation([user("Tell me more."), assistant("More words. " * 40)], row=1)],
            {"max_seq_length": LIMIT, "overflow": "drop"},
            f"Every row is longer than max_seq_length={LIMIT}",
        ),
    ],
    ids=["no answers", "every answer beyond the limit", "every row dropped"],
)
def test_nothing_to_train_is_refused(tiny_tokenizer, rows, options, message):
    with pytest.raises(UserError, match=message):
        render(tiny_tokenizer, *rows, **options)


def test_rows_without_an_answer_are_listed_not_trained(tiny_tokenizer):
    rows = [Conversation([user("Hi")], row=1), Conversation([user("Hi"), assistant("Yo.")], row=2)]
    rendered = render(tiny_tokenizer, *rows)
    assert rendered.no_answer_rows == [1] and [r.row for r in rendered.rows] == [2]
    assert len(rendered.lengths) == 2


# --- loading ------------------------------------------------------------------------------


def test_load_tokenizer_reads_a_local_folder(tiny_model_dir):
    tokenizer = load_tokenizer(str(tiny_model_dir))
    assert tokenizer.chat_template and tokenizer.eos_token == IM_END


def test_load_tokenizer_explains_a_missing_folder(tmp_path):
    with pytest.raises(UserError, match="no folder at that path") as caught:
        load_tokenizer(str(tmp_path / "nowhere"))
    assert "hub id" in caught.value.hint


def test_load_tokenizer_refuses_a_tokenizer_without_chat_template(tiny_tokenizer, tmp_path):
    bare = with_template(tiny_tokenizer, "")
    bare.chat_template = None
    bare.save_pretrained(tmp_path)
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(UserError, match="no chat template") as caught:
        load_tokenizer(str(tmp_path))
    assert "Instruct" in caught.value.hint


def test_the_ids_shortcut_agrees_with_character_offsets(tiny_tokenizer, monkeypatch):
    """Answers are located from ids alone where possible; offsets must give the same rows."""
    from engine.data import render as module

    conversations = [case[0] for case in MASKING_CASES.values()]
    conversations.append(Conversation([user("Hi"), assistant("\nHello.")], row=99))
    fast = render(tiny_tokenizer, *conversations, train_on_reasoning=True)
    monkeypatch.setattr(module._Locator, "for_tokenizer", classmethod(lambda cls, *a: None))
    slow = render(tiny_tokenizer, *conversations, train_on_reasoning=True)
    assert [(r.row, list(r.input_ids), r.spans) for r in fast.rows] == [
        (r.row, list(r.input_ids), r.spans) for r in slow.rows
    ]


def test_offsets_that_skip_spaces_still_find_the_answer(tiny_tokenizer, monkeypatch):
    """Tokenizers that trim spaces from offsets leave some characters without a token."""
    from tokenizers import processors

    from engine.data import render as module

    trimming = copy.deepcopy(tiny_tokenizer)
    trimming.backend_tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    monkeypatch.setattr(module._Locator, "for_tokenizer", classmethod(lambda cls, *a: None))
    conversation = Conversation([user("Hi"), assistant("  Hello there.")], row=1)
    [row] = render(trimming, conversation).rows
    trained = [s.text for s in preview_segments(row, trimming) if s.trained]
    assert trained == ["  Hello there.<|im_end|>"]
