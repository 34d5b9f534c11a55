"""Format detection, mapping overrides, normalisation to chat messages, and problem finding."""

from __future__ import annotations

import json

import pytest

from engine.data.formats import detect, normalise, split_rendered
from engine.data.problems import find_problems, repair, report
from engine.data.types import Conversation, Table
from engine.errors import UserError


def table(rows: list[dict]) -> Table:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return Table(source="data.jsonl", columns=columns, rows=rows)


def chat(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in pairs]


SHAREGPT_TURNS = [{"from": "human", "value": "Hi there"}, {"from": "gpt", "value": "Hello!"}]

# rows, format, mapping, words the evidence must use, the first row as chat messages
DETECTION = {
    "alpaca": (
        [{"instruction": "Add the numbers", "input": "2 and 3", "output": "5"}],
        "alpaca",
        {"instruction": "instruction", "output": "output", "input": "input"},
        ["Alpaca", "instruction (+ input) -> user", "output -> assistant"],
        chat(("user", "Add the numbers\n\n2 and 3"), ("assistant", "5")),
    ),
    "alpaca_with_system": (
        [{"system": "Be brief.", "instruction": "Say hi", "input": "", "output": "Hi"}],
        "alpaca",
        {"instruction": "instruction", "output": "output", "input": "input", "system": "system"},
        ["system -> system prompt"],
        chat(("system", "Be brief."), ("user", "Say hi"), ("assistant", "Hi")),
    ),
    "sharegpt_from_value": (
        [{"id": "a1", "conversations": SHAREGPT_TURNS}],
        "sharegpt",
        {"conversations": "conversations"},
        ["ShareGPT", "conversations[].from/value -> user/assistant", "human, gpt"],
        chat(("user", "Hi there"), ("assistant", "Hello!")),
    ),
    "sharegpt_role_content": (
        [{"conversation": [{"role": "User", "content": "Hi"}, {"role": "bot", "content": "Yo"}]}],
        "sharegpt",
        {"conversations": "conversation"},
        ["conversation[].role/content"],
        chat(("user", "Hi"), ("assistant", "Yo")),
    ),
    "sharegpt_turns_stored_as_json_text": (
        [{"chat": json.dumps(SHAREGPT_TURNS)}],
        "sharegpt",
        {"conversations": "chat"},
        ["chat[].from/value"],
        chat(("user", "Hi there"), ("assistant", "Hello!")),
    ),
    "messages_with_model_role": (
        [
            {
                "messages": chat(("system", "Terse."), ("user", "2+2?"))
                + [{"role": "model", "content": "4"}]
            }
        ],
        "messages",
        {"conversations": "messages"},
        ["chat messages", "messages[].role/content"],
        chat(("system", "Terse."), ("user", "2+2?"), ("assistant", "4")),
    ),
    "teacher_output_file": (
        [
            {
                "messages": chat(("user", "Why is the sky blue?"), ("assistant", "Rayleigh.")),
                "meta": {"model": "deepseek-v4-flash", "finish_reason": "stop"},
                "reasoning": "Light scatters...",
            }
        ],
        "messages",
        {"conversations": "messages", "reasoning": "reasoning"},
        ["reasoning -> teacher reasoning"],
        chat(("user", "Why is the sky blue?"), ("assistant", "Rayleigh.")),
    ),
    "prompt_completion": (
        [{"prompt": "Once upon", "completion": "a time"}],
        "pair",
        {"prompt": "prompt", "response": "completion"},
        ["prompt -> user", "completion -> assistant"],
        chat(("user", "Once upon"), ("assistant", "a time")),
    ),
    "question_answer_capitalised": (
        [{"Question": "Capital of Peru?", "Answer": "Lima"}],
        "pair",
        {"prompt": "Question", "response": "Answer"},
        ["Question -> user", "Answer -> assistant"],
        chat(("user", "Capital of Peru?"), ("assistant", "Lima")),
    ),
    "query_response_with_system": (
        [{"system_prompt": "Be kind.", "query": "Help", "response": "Sure"}],
        "pair",
        {"prompt": "query", "response": "response", "system": "system_prompt"},
        ["query -> user"],
        chat(("system", "Be kind."), ("user", "Help"), ("assistant", "Sure")),
    ),
    "answer_by_elimination": (
        [{"id": 7, "question": "Why?", "explanation": "Because."}],
        "pair",
        {"prompt": "question", "response": "explanation"},
        ["only other text column"],
        chat(("user", "Why?"), ("assistant", "Because.")),
    ),
    "pair_guessed_from_order": (
        [{"src": "Bonjour le monde", "tgt": "Hello world"}],
        "pair",
        {"prompt": "src", "response": "tgt"},
        ["guessed from column order", "--map"],
        chat(("user", "Bonjour le monde"), ("assistant", "Hello world")),
    ),
    "prompts_only": (
        [{"prompt": "Write a haiku about rain"}],
        "pair",
        {"prompt": "prompt"},
        ["no answer column"],
        chat(("user", "Write a haiku about rain")),
    ),
    "chatml_text": (
        [{"text": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHey<|im_end|>\n"}],
        "text",
        {"text": "text"},
        ["already-rendered text"],
        chat(("user", "Hi"), ("assistant", "Hey")),
    ),
    "rendered_text_under_another_name": (
        [{"sample": "### Human: Hi there ### Assistant: Hello", "score": 3}],
        "text",
        {"text": "sample"},
        ["sample holds whole conversations"],
        chat(("user", "Hi there"), ("assistant", "Hello")),
    ),
}


@pytest.mark.parametrize("case", DETECTION)
def test_detects_format_mapping_and_normalises(case):
    rows, fmt, mapping, evidence_words, messages = DETECTION[case]
    data = table(rows)
    detection = detect(data)
    assert (detection.format, detection.mapping) == (fmt, mapping)
    for words in evidence_words:
        assert words in detection.evidence
    conversations, unreadable = normalise(data, detection)
    assert unreadable == []
    assert conversations[0].messages == messages
    assert conversations[0].row == 1


def test_reasoning_column_reaches_the_conversation():
    rows = [{"question": "2+2?", "answer": "4", "thinking": "  two plus two  "}]
    detection = detect(table(rows))
    assert detection.mapping["reasoning"] == "thinking"
    conversations, _ = normalise(table(rows), detection)
    assert conversations[0].reasoning == "two plus two"


def test_reasoning_on_a_few_rows_of_a_teacher_file_is_kept():
    answer = chat(("user", "Hi"), ("assistant", "Hello"))
    rows = [{"messages": answer, "meta": {}} for _ in range(1000)]
    rows.append({"messages": answer, "reasoning": "greet back", "meta": {}})
    data = Table("teacher.jsonl", ["messages", "reasoning", "meta"], rows)
    detection = detect(data)
    assert detection.mapping == {"conversations": "messages", "reasoning": "reasoning"}
    assert normalise(data, detection)[0][-1].reasoning == "greet back"


@pytest.mark.parametrize(
    "rows",
    [
        [{"a": 1, "b": 2.5}],
        [{"label": "positive"}],
        [{"x": "one text", "y": "two text", "z": "three text"}],
    ],
    ids=["numbers", "one_plain_column", "three_unnamed_texts"],
)
def test_unknown_shapes_say_what_was_seen(rows):
    detection = detect(table(rows))
    assert detection.format == "unknown"
    assert detection.mapping == {}
    for column in rows[0]:
        assert column in detection.evidence
    assert "--map" in detection.evidence
    with pytest.raises(UserError):
        normalise(table(rows), detection)


def test_detection_samples_rows_across_the_table():
    # The first rows lack answers; detection must still see the answer column.
    rows = [{"prompt": f"p{i}"} for i in range(300)] + [
        {"prompt": f"q{i}", "output": f"a{i}"} for i in range(300)
    ]
    detection = detect(table(rows))
    assert detection.mapping == {"prompt": "prompt", "response": "output"}


# ---------------------------------------------------------------- mapping override

OVERRIDE_ROWS = [{"title": "Rain", "body": "Write a poem about rain", "poem": "Drip, drop."}]


@pytest.mark.parametrize(
    ("mapping", "expected", "messages"),
    [
        (
            {"prompt": "body", "response": "poem"},
            {"prompt": "body", "response": "poem"},
            chat(("user", "Write a poem about rain"), ("assistant", "Drip, drop.")),
        ),
        (
            {"instruction": "body", "input": "title", "output": "poem"},
            {"instruction": "body", "input": "title", "output": "poem"},
            chat(("user", "Write a poem about rain\n\nRain"), ("assistant", "Drip, drop.")),
        ),
        (
            {"prompt": "title", "response": "body", "system": "poem"},
            {"prompt": "title", "response": "body", "system": "poem"},
            chat(
                ("system", "Drip, drop."),
                ("user", "Rain"),
                ("assistant", "Write a poem about rain"),
            ),
        ),
    ],
    ids=["pair", "alpaca", "pair_with_system"],
)
def test_mapping_override_wins(mapping, expected, messages):
    data = table(OVERRIDE_ROWS)
    detection = detect(data, mapping=mapping)
    assert detection.mapping == expected
    assert "you mapped" in detection.evidence
    assert normalise(data, detection)[0][0].messages == messages


def test_partial_override_completes_the_rest():
    data = table([{"question": "Q?", "answer": "A", "better_answer": "A!"}])
    detection = detect(data, mapping={"response": "better_answer"})
    assert detection.mapping == {"prompt": "question", "response": "better_answer"}


def test_messages_key_is_an_alias_for_conversations():
    data = table([{"dialog": SHAREGPT_TURNS, "other": SHAREGPT_TURNS[:1]}])
    assert detect(data, mapping={"messages": "other"}).mapping == {"conversations": "other"}


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"mapping": {"prompt": "question"}}, ["no column named question", "title, body, poem"]),
        ({"mapping": {"answer": "poem"}}, ["unknown mapping key answer", "response"]),
        ({"mapping": {"prompt": "body", "output": "poem"}}, ["mix different formats"]),
        ({"format": "sharegpt"}, ["cannot read data.jsonl as sharegpt", "conversations=COLUMN"]),
        ({"format": "pair", "mapping": {"instruction": "body"}}, ["do not fit format pair"]),
        ({"format": "csv"}, ["unknown format 'csv'"]),
    ],
    ids=[
        "missing_column",
        "unknown_key",
        "mixed_keys",
        "forced_format",
        "wrong_keys",
        "bad_format",
    ],
)
def test_bad_overrides_say_what_would_work(kwargs, words):
    with pytest.raises(UserError) as caught:
        detect(table(OVERRIDE_ROWS), **kwargs)
    text = f"{caught.value} {caught.value.hint}"
    for word in words:
        assert word in text


# ---------------------------------------------------------------- awkward rows


def test_unreadable_conversations_are_reported_by_row():
    rows = [
        {"conversations": SHAREGPT_TURNS},
        {"conversations": "not a list"},
        {"conversations": [{"from": "narrator", "value": "Once"}, {"from": "gpt", "value": "x"}]},
        {"conversations": SHAREGPT_TURNS},
    ]
    data = table(rows)
    conversations, unreadable = normalise(data, detect(data))
    assert unreadable == [2, 3]
    assert [c.row for c in conversations] == [1, 4]


def test_openai_content_parts_and_numbers_become_text():
    rows = [
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "What is 6*7?"}]},
                {"role": "assistant", "content": 42},
            ]
        }
    ]
    data = table(rows)
    conversations, _ = normalise(data, detect(data))
    assert conversations[0].messages == chat(("user", "What is 6*7?"), ("assistant", "42"))


def test_alpaca_layout_text_splits_into_turns():
    text = (
        "Below is an instruction that describes a task.\n\n"
        "### Instruction:\nTranslate to French\n\n### Input:\ncat\n\n### Response:\nchat"
    )
    assert split_rendered(text) == chat(
        ("system", "Below is an instruction that describes a task."),
        ("user", "Translate to French\n\ncat"),
        ("assistant", "chat"),
    )
    assert split_rendered("plain prose with no turns") is None


# ---------------------------------------------------------------- problems


def test_each_problem_kind_is_found_with_its_rows():
    rows = [
        {"prompt": "ok", "response": "fine"},  # 1
        {"prompt": "  ", "response": "an answer"},  # 2 empty_prompt
        {"prompt": "a question", "response": ""},  # 3 empty_response
        {"prompt": "a question", "response": None},  # 4 missing_response
        {"prompt": "ok", "response": "fine"},  # 5 duplicate of 1
        {"prompt": "ok", "response": "fine "},  # 6 duplicate once stripped
        {"prompt": "ok", "response": "different"},  # 7 fine: same prompt, other answer
    ]
    data = table(rows)
    conversations, _ = normalise(data, detect(data))
    flagged = find_problems(conversations)
    assert flagged == {
        "empty_prompt": [2],
        "empty_response": [3],
        "missing_response": [4],
        "teacher_flagged": [],
        "duplicate": [5, 6],
    }
    assert [c.row for c in repair(conversations, flagged)] == [1, 7]
    assert data.rows[2] == {"prompt": "a question", "response": ""}  # the source is untouched


def test_answers_the_teacher_flagged_are_reported_and_dropped():
    """A cut or refused teacher answer is never mixed silently into the training set."""

    def answer(q, a, flags):
        return {
            "messages": chat(("user", q), ("assistant", a)),
            "meta": {"model": "t", "finish_reason": "stop", "flags": flags},
        }

    data = table(
        [answer("q1", "a1", []), answer("q2", "cut mid", ["length"]), answer("q3", "a3", [])]
    )
    conversations, _ = normalise(data, detect(data))
    flagged = find_problems(conversations)
    assert flagged["teacher_flagged"] == [2]
    assert [c.row for c in repair(conversations, flagged)] == [1, 3]
    assert "flagged by the teacher" in report(flagged)[0].message


def test_multi_turn_problems_look_at_every_turn():
    conversations = [
        Conversation(
            chat(("user", "hi"), ("assistant", "yo"), ("user", ""), ("assistant", "?")), 1
        ),
        Conversation(
            chat(("user", "hi"), ("assistant", "yo"), ("user", "more"), ("assistant", "")), 2
        ),
        Conversation(chat(("system", "s"), ("user", "hi")), 3),
        Conversation(chat(("assistant", "unprompted")), 4),
    ]
    assert find_problems(conversations) == {
        "empty_prompt": [1, 4],
        "empty_response": [2],
        "missing_response": [3],
        "teacher_flagged": [],
        "duplicate": [],
    }


def test_report_counts_shows_first_rows_and_orders_kinds():
    flagged = {"duplicate": [9], "empty_prompt": list(range(1, 13)), "missing_response": []}
    problems = report(flagged)
    assert [p.kind for p in problems] == ["empty_prompt", "duplicate"]
    first = problems[0].to_dict()
    assert first["count"] == 12 and first["rows"] == [1, 2, 3, 4, 5]
    assert first["message"].startswith("12 row(s) have an empty prompt")
