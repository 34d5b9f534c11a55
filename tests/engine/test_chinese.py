"""Stillroom in Chinese, seen from the engine: a user's mistake is explained in Chinese (the
message and how to fix it) when the user asked for Chinese, and in English otherwise; a
Chinese dataset reads, inspects and renders like any other."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.engine.training import stillroom

_HAN = re.compile(r"[\u4e00-\u9fff]")


def _cli(*args: str, lang: str, cwd) -> tuple[int, str]:
    result = stillroom(*args, cwd=cwd, env={**os.environ, "STILLROOM_LANG": lang})
    return result.returncode, result.stderr


@pytest.fixture
def empty_data(tmp_path):
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    (tmp_path / "bad.toml").write_text("[training]\nbatch_size = 0\n", encoding="utf-8")
    (tmp_path / "qa.jsonl").write_text('{"q": "Hi?", "a": "Hello."}\n', encoding="utf-8")
    return tmp_path


MISTAKES = [
    # (arguments, Chinese message, Chinese hint, English message, English hint)
    (
        ("train", "missing.toml"),
        "计划 missing.toml 有 1 个问题：\n  - 文件不存在",
        "stillroom plan --defaults > missing.toml",
        "The plan missing.toml has 1 problem(s):\n  - file not found",
        "Check the path, or write a plan",
    ),
    (
        ("train", "bad.toml"),
        "training.batch_size: 必须不小于 1（实际为 0）",
        "stillroom plan --defaults",
        "training.batch_size: Input should be greater than or equal to 1 (got 0)",
        "Fix the keys named above",
    ),
    (
        ("inspect", "empty.jsonl"),
        "empty.jsonl：文件为空",
        None,
        "empty.jsonl: the file is empty",
        None,
    ),
    (
        ("inspect", "qa.jsonl", "--map", "question=q"),
        "未知的映射键 question",
        "可用的键：",
        "unknown mapping key question",
        "use any of ",
    ),
]


@pytest.mark.parametrize(
    ("args", "zh", "zh_hint", "en", "en_hint"),
    MISTAKES,
    ids=["missing-plan", "plan-value-out-of-range", "empty-data", "unknown-mapping-key"],
)
def test_a_user_mistake_is_explained_in_the_users_language(
    empty_data, args, zh, zh_hint, en, en_hint
):
    """STILLROOM_LANG=zh: the message and its hint are Chinese; without it, English as before."""
    code, said = _cli(*args, lang="zh", cwd=empty_data)
    assert code == 2 and "Traceback" not in said
    assert zh in said
    if zh_hint:
        hint = next(line for line in said.splitlines() if zh_hint in line)
        assert _HAN.search(hint), hint  # the hint is a Chinese sentence around the command
    code, said = _cli(*args, lang="en", cwd=empty_data)
    assert code == 2 and "Traceback" not in said
    assert en in said and not _HAN.search(said)
    if en_hint:
        assert en_hint in said


CHINESE_ROWS = [
    {
        "instruction": "什么是知识蒸馏？",
        "input": "",
        "output": "知识蒸馏是让小模型学习大模型回答的方法。",
    },
    {
        "instruction": "把下面的句子翻译成英文。",
        "input": "今天天气很好。",
        "output": "The weather is nice today.",
    },
    {
        "instruction": "什么是知识蒸馏？",
        "input": "",
        "output": "知识蒸馏是让小模型学习大模型回答的方法。",
    },
    {"instruction": "用一句话介绍 LoRA。", "input": "", "output": ""},
]


@pytest.fixture
def chinese_file(tmp_path):
    path = tmp_path / "zh.jsonl"
    path.write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in CHINESE_ROWS),
        encoding="utf-8",
    )
    return path


def test_a_chinese_dataset_inspects_and_renders_with_its_answers_trained(
    chinese_file, tiny_model_dir
):
    """Chinese rows are read as Alpaca, their problems found, and rendered with the student's
    template so that exactly the Chinese answer is trained."""
    from engine.data.inspect import inspect_source

    report = inspect_source(str(chinese_file), model=str(tiny_model_dir))
    assert (report.format, report.rows, report.usable_rows) == ("alpaca", 4, 2)
    assert {p.kind: p.rows for p in report.problems} == {"empty_response": [4], "duplicate": [3]}
    assert report.tokens["min"] > 0 and report.gate is None
    trained = "".join(piece for piece, is_trained in report.preview if is_trained)
    prompt = "".join(piece for piece, is_trained in report.preview if not is_trained)
    assert "知识蒸馏是让小模型学习大模型回答的方法。" in trained
    assert "什么是知识蒸馏？" in prompt and "什么是知识蒸馏？" not in trained


def test_a_chinese_dataset_reads_its_problems_out_in_chinese(chinese_file):
    """`stillroom inspect` in Chinese says what is wrong with the rows in Chinese."""
    result = stillroom(
        "inspect",
        str(chinese_file),
        env={**os.environ, "STILLROOM_LANG": "zh", "COLUMNS": "250"},
    )
    assert result.returncode == 0, result.stderr
    assert "1 条数据的回答为空" in result.stdout
    assert "1 条数据与前面某条完全相同；只保留第一份。" in result.stdout
    assert "什么是知识蒸馏？" in result.stdout  # the sample, intact


def test_the_run_log_reads_in_chinese_when_the_user_asked_for_chinese(tiny_model_dir, tmp_path):
    """A run started in Chinese writes its plain-words lines (the schedule, the batches,
    checkpoints, how many parameters LoRA trains, Stillroom's own cost) in Chinese."""
    from engine import events as ev
    from tests.engine.training import events_of, write_facts, write_plan

    plan = write_plan(tmp_path, tiny_model_dir, write_facts(tmp_path), max_steps=2)
    result = stillroom("train", str(plan), env={**os.environ, "STILLROOM_LANG": "zh"})
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    lines = [e.line for e in events_of(run_dir, ev.Log)]
    for start in (
        "学生模型 ",
        "max_steps=2 x",
        "批次：",
        "每 10 步",
        "LoRA 训练 ",
        "Stillroom 自身",
    ):
        assert any(line.startswith(start) for line in lines), (start, lines)
    english = ("student model ", "batches:", "checkpoints every", "LoRA trains", "Stillroom's own")
    assert not [line for line in lines if line.startswith(english)], lines
