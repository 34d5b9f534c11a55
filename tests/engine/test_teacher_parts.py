"""The teacher's pure parts: reasoning, quality flags, prompts, the store, presets, prices."""

from __future__ import annotations

import json

import pytest

from engine.plan import PlanError, TeacherPlan, plan_from_dict
from engine.teacher import quality
from engine.teacher.prompts import Prompt, dedupe, parse_questions, read_prompts
from engine.teacher.providers import price_for
from engine.teacher.reasoning import split_reasoning, training_messages
from engine.teacher.store import Store, prompt_key, record_key, repair_tail


@pytest.mark.parametrize(
    ("content", "reasoning_content", "expected"),
    [
        ("Plain answer.", None, ("Plain answer.", None)),
        ("The answer.", "  I thought.  ", ("The answer.", "I thought.")),
        (
            "<think>\nstep 1\nstep 2\n</think>\n\nThe answer.",
            None,
            ("The answer.", "step 1\nstep 2"),
        ),
        ("step 1</think>\n\nThe answer.", None, ("The answer.", "step 1")),
        ("<THINKING>hm</THINKING>A", None, ("A", "hm")),
        ("<think>cut off mid-thought", None, ("", "cut off mid-thought")),
        ("<think>inline</think>A", "separate", ("A", "separate\n\ninline")),
    ],
    ids=["none", "field", "inline", "closing-only", "thinking-tag", "unclosed", "both"],
)
def test_reasoning_becomes_one_field(content, reasoning_content, expected):
    assert split_reasoning(content, reasoning_content) == expected


def test_training_text_with_or_without_reasoning():
    record = {
        "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
        "reasoning": "R",
    }
    assert training_messages(record, with_reasoning=False)[-1]["content"] == "A"
    assert (
        training_messages(record, with_reasoning=True)[-1]["content"] == "<think>\nR\n</think>\n\nA"
    )
    assert record["messages"][-1]["content"] == "A"  # the record itself is untouched


@pytest.mark.parametrize(
    ("answer", "finish", "flags"),
    [
        ("A full answer.", "stop", []),
        ("A half", "length", ["length"]),
        ("   ", "stop", ["empty"]),
        ("", "length", ["length", "empty"]),
        ("I'm sorry, but I can't help with that.", "stop", ["refusal"]),
        ("I cannot assist with this request.", "stop", ["refusal"]),
        ("As an AI language model, I cannot provide that.", "stop", ["refusal"]),
        ("I can't stress enough how useful caching is.", "stop", []),
        ("Sure. I cannot help but note that...", "stop", []),
    ],
)
def test_quality_flags(answer, finish, flags):
    assert quality.flags(answer, finish) == flags


def test_text_prompts_skip_blank_lines(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("first\n\n  second  \n", encoding="utf-8")
    assert read_prompts(path) == [Prompt("first", row=1), Prompt("second", row=3)]


def test_jsonl_prompt_field_with_its_own_system(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"prompt": "a question"}, {"prompt": "another", "system": "Be brief."}, {"prompt": ""}]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    assert [(p.user, p.system) for p in read_prompts(path)] == [
        ("a question", None),
        ("another", "Be brief."),
    ]


def test_dataset_user_turns_are_reanswered(tmp_path):
    path = tmp_path / "alpaca.json"
    rows = [
        {"instruction": "Name three colours.", "input": "", "output": "Red, green, blue."},
        {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
    ]
    path.write_text(json.dumps(rows), encoding="utf-8")
    prompts = read_prompts(path)
    assert [p.user.splitlines()[0] for p in prompts] == [
        "Name three colours.",
        "Translate to French.",
    ]
    assert "Good morning" in prompts[1].user


def test_near_duplicates_are_dropped_and_counted():
    texts = [
        "How does a write-ahead log make a database crash safe?",
        "how does a write-ahead log make a database crash safe?",  # exact after normalising
        "How does a write-ahead log make a database crash safe today?",  # near
        "Why do B-trees suit disks better than binary trees?",
    ]
    kept, diversity = dedupe([Prompt(t) for t in texts], 0.7)
    assert [p.user for p in kept] == [texts[0], texts[3]]
    assert (diversity.exact_duplicates, diversity.near_duplicates, diversity.kept) == (1, 1, 2)
    assert 0 < diversity.distinct_2 <= 1
    assert len(dedupe([Prompt(t) for t in texts], 0.0)[0]) == 3  # 0 turns the near filter off


def test_dedupe_scales_linearly():
    prompts = [
        Prompt(f"question {i} about item {i * 7919 % 10007} and part {i % 97}")
        for i in range(20000)
    ]
    kept, _ = dedupe(prompts, 0.8)
    assert len(kept) == 20000


def test_questions_are_parsed_from_numbered_lists():
    text = "Here are some questions:\n1. What is a cache line?\n2) Why use a B-tree?\n- How do locks work?\n\nok"
    assert parse_questions(text) == [
        "What is a cache line?",
        "Why use a B-tree?",
        "How do locks work?",
    ]


def test_chinese_questions_are_parsed_and_near_duplicates_found():
    """Chinese has no spaces: a question is kept by its characters, and each character is a
    word to the near-duplicate filter, so a reworded copy is still caught."""
    text = "以下是问题：\n1. 什么是知识蒸馏？\n2、为什么要用 LoRA 微调？\n3．好的\n4）怎样判断学生模型学会了？"
    assert parse_questions(text) == [
        "什么是知识蒸馏？",
        "为什么要用 LoRA 微调？",
        "怎样判断学生模型学会了？",
    ]
    texts = [
        "为什么知识蒸馏能让小模型学到大模型的能力？",
        "为什么知识蒸馏能让小模型学到大模型的本领？",
    ]
    kept, diversity = dedupe([Prompt(t) for t in texts], 0.7)
    assert len(kept) == 1 and diversity.near_duplicates == 1


def test_store_repairs_a_torn_tail_and_keys_by_content(tmp_path):
    path = tmp_path / "out.jsonl"
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    path.write_text(json.dumps(good) + "\n" + '{"messages": [{"role": "us', encoding="utf-8")
    store = Store(path)
    assert store.repaired_bytes > 0
    assert path.read_text().endswith("\n")
    assert store.done_keys() == {prompt_key(None, "q")}
    store.append(good)
    assert [json.loads(line) for line in path.read_text().splitlines()] == [good, good]
    assert repair_tail(path) == 0
    assert record_key(
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}
    ) == prompt_key("s", "q")
    assert prompt_key("s", "q") != prompt_key(None, "q")


def test_provider_presets_fill_what_the_plan_leaves_out():
    openai = TeacherPlan(provider="openai")
    assert (openai.base_url, openai.api_key_env) == ("https://api.openai.com/v1", "OPENAI_API_KEY")
    local = TeacherPlan(provider="local")
    assert local.api_key_env == "" and local.base_url.startswith("http://localhost")
    mine = TeacherPlan(provider="openai", base_url="https://proxy.example/v1")
    assert mine.base_url == "https://proxy.example/v1"
    with pytest.raises(PlanError, match="base_url"):
        plan_from_dict({"teacher": {"provider": "custom"}})
    with pytest.raises(PlanError, match="api_key_env"):
        plan_from_dict({"teacher": {"api_key_env": "sk-abcdef123456"}})


def test_prices_come_from_the_table_unless_the_plan_overrides():
    assert price_for("deepseek", "deepseek-v4-flash").cost(1_000_000, 1_000_000) == pytest.approx(
        0.42
    )
    assert price_for("local", "anything").cost(10**6, 10**6) == 0
    assert price_for("custom", "unknown") is None
    assert price_for("deepseek", "deepseek-v4-flash", input_per_mtok=1.0).input_per_mtok == 1.0
    assert price_for("custom", "unknown", 1.0, 2.0).cost(10**6, 10**6) == 3.0
