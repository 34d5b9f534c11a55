"""The CLI in Simplified Chinese: help, reports and live lines are Chinese with ``--lang zh``,
while ``--json`` output stays machine-readable (English keys and status words)."""

from __future__ import annotations

import json
import re

from tests.engine.training import stillroom, write_facts, write_plan

HAN = re.compile(r"[\u4e00-\u9fff]")


def test_inspect_reports_in_chinese_and_its_json_keys_stay_english(tmp_path):
    data = write_facts(tmp_path)
    chinese = stillroom("--lang", "zh", "inspect", str(data), cwd=tmp_path)
    assert chinese.returncode == 0, chinese.stderr
    assert "条数据" in chinese.stdout and "条可用" in chinese.stdout
    assert "列名" in chinese.stdout and "rows" not in chinese.stdout

    english = stillroom("inspect", str(data), "--json", cwd=tmp_path)
    as_zh = stillroom("inspect", str(data), "--json", "--lang", "zh", cwd=tmp_path)
    assert set(json.loads(as_zh.stdout)) == set(json.loads(english.stdout))


def test_doctor_speaks_chinese_and_its_json_stays_english(tmp_path):
    plan = write_plan(tmp_path, tmp_path / "no-such-model", write_facts(tmp_path))
    table = stillroom("doctor", str(plan), "--lang", "zh", cwd=tmp_path)
    assert "学生模型" in table.stdout and "磁盘" in table.stdout
    assert "失败" in table.stdout  # the missing student folder, marked in Chinese

    checks = json.loads(stillroom("doctor", str(plan), "--json", "--lang=zh", cwd=tmp_path).stdout)
    assert {"name", "status", "detail", "hint"} <= set(checks[0])
    assert {c["status"] for c in checks} <= {"ok", "warn", "fail"}
    assert "student model" in {c["name"] for c in checks}


def test_every_command_help_is_chinese(tmp_path):
    for command in ("inspect", "doctor", "generate", "train", "runs", "attach", "cancel",
                    "chat", "eval", "export", "demo", "plan"):  # fmt: skip
        shown = stillroom("--lang", "zh", command, "--help", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        description = shown.stdout.split("\n\n")[1]  # the paragraph after the usage lines
        assert HAN.search(description), (command, shown.stdout[:400])


def test_runs_lists_in_chinese(tmp_path):
    shown = stillroom("--lang", "zh", "runs", "--runs-dir", "nowhere", cwd=tmp_path)
    assert shown.stdout.strip() == "nowhere/ 中没有运行"
