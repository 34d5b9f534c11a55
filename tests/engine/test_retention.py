"""Retention: the scoring rules (pure, table-driven), the report and the base-answer cache on
the facts run, and on the real SmolLM2 that the control set is meaningful (the base knows it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.retention import (
    CONTROL_SET,
    REPLAY_HALF,
    RETENTION_HALF,
    ControlPrompt,
    has_fact,
    score,
    summarise,
)
from tests.engine.training import stillroom

PARIS = ControlPrompt("What is the capital of France?", ("Paris",))
FOUR = ControlPrompt("What is 2 plus 2?", ("4", "four"))
BEIJING = ControlPrompt("中国的首都是哪里？", ("北京", "Beijing"))
OPEN = ControlPrompt("Give one tip for sleeping better.")


@pytest.mark.parametrize(
    ("answer", "facts", "found"),
    [
        ("The capital of France is Paris.", ("Paris",), True),
        ("the capital is PARIS", ("Paris",), True),
        ("The capital of France is Saint-Germain.", ("Paris",), False),
        ("2 plus 2 equals 4.", ("4", "four"), True),
        ("Two plus two is Four", ("4", "four"), True),
        ("It is 14.", ("4", "four"), False),  # a digit counts as a whole number only
        ("fourteen", ("4", "four"), False),
        ("中国的首都是北京。", ("北京", "Beijing"), True),  # no word gaps in Chinese
        ("中国的首都是上海。", ("北京", "Beijing"), False),
    ],
)
def test_a_key_fact_is_any_of_them_case_insensitive_and_whole(answer, facts, found):
    assert has_fact(answer, facts) is found


@pytest.mark.parametrize(
    ("control", "base", "student", "kept"),
    [
        (PARIS, "Paris.", "The capital of France is Paris.", True),
        (PARIS, "Paris.", "The capital of France is Saint-Germain.", False),
        (PARIS, "Lyon.", "Paris.", None),  # the base never knew it: left out, not forgotten
        (PARIS, "Lyon.", "Marseille.", None),
        (BEIJING, "北京", "是北京。", True),
        (OPEN, "Go to bed at the same time every night.", "Go to bed at the same time.", True),
        (OPEN, "Go to bed at the same time every night.", "Drink coffee.", False),
    ],
)
def test_retention_score_per_prompt(control, base, student, kept):
    assert score(control, base, student).kept is kept


def test_the_summary_leaves_out_what_the_base_got_wrong_and_flags_forgetting():
    base = [
        "Paris." if c.prompt == PARIS.prompt else f"base {i}" for i, c in enumerate(RETENTION_HALF)
    ]
    same = summarise(base, base)
    key_facts = sum(1 for c in RETENTION_HALF if c.facts)
    assert same["prompts"] == len(RETENTION_HALF) - key_facts + 1  # open prompts and Paris
    assert same["left_out"] == key_facts - 1
    assert same["kept"] == same["prompts"] and same["share"] == 1.0
    assert not same["forgetting"] and same["changed"] == []

    forgot = ["Saint-Germain." if b == "Paris." else "nothing alike" for b in base]
    lost = summarise(base, forgot)
    assert lost["kept"] == 0 and lost["forgetting"]
    assert lost["changed"][0]["prompt"] == PARIS.prompt  # a lost key fact first
    assert lost["changed"][0]["student"] == "Saint-Germain." and not lost["changed"][0]["kept"]
    assert len(lost["changed"]) == 5


def test_the_control_set_is_about_sixty_prompts_a_half_in_english_and_chinese():
    prompts = [c.prompt for c in CONTROL_SET]
    assert 110 <= len(prompts) <= 140 and len(set(prompts)) == len(prompts)
    assert sum(1 for p in prompts if any("\u4e00" <= ch <= "\u9fff" for ch in p)) >= 10
    assert sum(1 for c in CONTROL_SET if not c.facts) >= 5


def test_retention_never_scores_a_prompt_that_replay_trains_on():
    """The control set's two halves share no prompt, and together they are the whole set."""
    assert not {c.prompt for c in RETENTION_HALF} & {c.prompt for c in REPLAY_HALF}
    assert sorted(RETENTION_HALF + REPLAY_HALF, key=CONTROL_SET.index) == list(CONTROL_SET)
    for half in (RETENTION_HALF, REPLAY_HALF):  # each has Chinese and open prompts
        assert sum(1 for c in half if not c.facts) >= 5
        assert sum(1 for c in half if any("\u4e00" <= ch <= "\u9fff" for ch in c.prompt)) >= 5


def test_a_control_file_adds_the_users_prompts_and_a_bad_one_says_which_line(tmp_path):
    from engine.errors import UserError
    from engine.retention import retention_prompts

    good = tmp_path / "control.jsonl"
    good.write_text(
        'What is the capital of Peru?\n{"prompt": "Who wrote Hamlet?", "facts": ["Shakespeare"]}\n'
    )
    prompts = retention_prompts(str(good))
    assert prompts[: len(RETENTION_HALF)] == RETENTION_HALF
    assert prompts[len(RETENTION_HALF) :] == (
        ControlPrompt("What is the capital of Peru?"),
        ControlPrompt("Who wrote Hamlet?", ("Shakespeare",)),
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('Fine prompt\n{"facts": ["x"]}\n')
    with pytest.raises(UserError, match="line 2"):
        retention_prompts(str(bad))
    with pytest.raises(UserError, match="cannot read"):
        retention_prompts(str(tmp_path / "missing.txt"))


def test_the_cache_key_follows_the_base_model_and_the_budget(tmp_path):
    """One cache file per base model, way of loading and budget; the prompts are keys in it."""
    from engine.retention import cache_key

    key = cache_key(str(tmp_path), {"backend": "hf"}, 48)
    assert key == cache_key(str(tmp_path / "."), {"backend": "hf"}, 48)  # the same folder
    assert key != cache_key(str(tmp_path), {"backend": "hf"}, 64)
    assert key != cache_key(str(tmp_path), {"backend": "unsloth"}, 48)
    assert key != cache_key("HuggingFaceTB/SmolLM2-135M-Instruct", {"backend": "hf"}, 48)


def test_the_base_model_answers_each_prompt_once_whichever_set_asks(tmp_path, monkeypatch):
    """Retention, replay and a user's control file share one cache per base model: a prompt
    answered once is read back, and only new prompts are put to the model."""
    from engine.plan import plan_from_dict
    from engine.retention import base_answers

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    plan = plan_from_dict({"student": {"model": "local/base"}})
    asked: list[str] = []

    def answer(missing):
        asked.extend(c.prompt for c in missing)
        return [f"base says {c.prompt}" for c in missing]

    first = base_answers(plan, "hf", RETENTION_HALF[:3], 48, answer)
    second = base_answers(plan, "hf", RETENTION_HALF[1:5], 48, answer)
    assert not first.cached and not second.cached and first.cache == second.cache
    assert asked == [c.prompt for c in RETENTION_HALF[:5]]  # each once
    assert second.answers == [f"base says {c.prompt}" for c in RETENTION_HALF[1:5]]
    assert base_answers(plan, "hf", RETENTION_HALF[:5], 48, answer).cached
    assert len(asked) == 5


def eval_run(run_dir: Path, cache: Path, *extra: str):
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    result = stillroom("eval", str(run_dir), "--max-new-tokens", "24", *extra, env=env)
    assert result.returncode == 0, result.stderr
    return result, json.loads((run_dir / "eval" / "report.json").read_text())


def test_eval_reports_retention_and_caches_the_base_answers(facts_run, tmp_path):
    """The first eval answers the control set with base and student and caches the base's; the
    second answers with the student only and reads the base's answers from the cache."""
    first, report = eval_run(facts_run, tmp_path)
    kept = report["retention"]
    assert kept["prompts"] + kept["left_out"] == len(RETENTION_HALF)
    assert kept["share"] == pytest.approx(kept["kept"] / kept["prompts"])
    assert isinstance(kept["forgetting"], bool) and len(kept["changed"]) <= 5
    assert {"prompt", "base", "student", "score"} <= set(kept["changed"][0])
    everything = len(RETENTION_HALF)
    assert not kept["base_cached"]
    assert f"retention, base: answered {everything}/{everything}" in first.stderr
    counted = kept["prompts"]  # the student is asked only what the base knew, and open prompts
    assert f"retention, student: answered {counted}/{counted}" in first.stderr
    headline = f"Learned {report['learned']['items']} of {report['rows']}, kept {kept['kept']}"
    assert first.stdout.startswith(headline)
    markdown = (facts_run / "eval" / "report.md").read_text()
    assert "## Retention" in markdown and "| prompt | base | student |" in markdown
    advice = "fewer epochs (or fewer steps) or a lower learning rate"
    assert (advice in markdown) is (advice in first.stdout) is kept["forgetting"]

    caches = list((tmp_path / "stillroom" / "retention").glob("*.json"))
    assert len(caches) == 1
    # Give the cached base every key fact: only a base read from the cache could know them all.
    record = json.loads(caches[0].read_text())
    record["answers"] |= {c.prompt: c.facts[0] for c in RETENTION_HALF if c.facts}
    caches[0].write_text(json.dumps(record))

    second, again = eval_run(facts_run, tmp_path)
    assert again["retention"]["base_cached"] and again["retention"]["left_out"] == 0
    assert "retention, base" not in second.stderr
    assert f"retention, student: answered {everything}/{everything}" in second.stderr


def test_no_retention_skips_it(facts_run, tmp_path):
    result, report = eval_run(facts_run, tmp_path, "--no-retention")
    assert "retention" not in report and "retention" not in result.stderr
    assert result.stdout.startswith(f"Learned {report['learned']['items']} of {report['rows']} (")
    assert not (tmp_path / "stillroom").exists()


def test_eval_scores_the_plans_control_file_too(facts_run, tmp_path):
    """eval.control adds the user's prompts to retention; a broken file stops eval before any
    model loads, saying which line is wrong."""
    import shutil

    run = tmp_path / facts_run.name
    shutil.copytree(facts_run, run, ignore=shutil.ignore_patterns("eval", "checkpoint-*"))
    control = tmp_path / "control.txt"
    control.write_text("Say hello.\nName a colour.\n")
    from engine.plan import load_plan, save_plan

    plan = load_plan(run / "plan.toml")
    plan.eval.control = str(control)
    save_plan(plan, run / "plan.toml")
    _, report = eval_run(run, tmp_path / "cache")
    kept = report["retention"]
    assert kept["prompts"] + kept["left_out"] == len(RETENTION_HALF) + 2
    assert kept["control_file"] == str(control)

    control.write_text('Say hello.\n{"prompt": ""}\n')
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    failed = stillroom("eval", str(run), "--max-new-tokens", "8", env=env)
    assert failed.returncode != 0 and "line 2" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_runs_lists_each_runs_last_evaluation(facts_run, tmp_path):
    """`stillroom runs` (and --json) shows the headline of a run's last evaluation, and a dash
    (null) for a run never evaluated."""
    import shutil

    from engine.evaluate import headline

    evaluated, never = tmp_path / "runs" / "evaluated", tmp_path / "runs" / "never"
    for run in (evaluated, never):
        shutil.copytree(facts_run, run, ignore=shutil.ignore_patterns("eval", "checkpoint*"))
    report = {"rows": 4, "items": [{"answers": {"student": {"f1": 1.0}}}] * 4,
              "retention": {"prompts": 15, "kept": 12}}  # fmt: skip
    (evaluated / "eval").mkdir()
    (evaluated / "eval" / "report.json").write_text(json.dumps(report))

    listed = stillroom("runs", "--json", "--runs-dir", str(tmp_path / "runs"))
    assert listed.returncode == 0, listed.stderr
    shown = {run["name"]: run["eval"] for run in json.loads(listed.stdout)}
    assert shown == {"evaluated": "learned 4 of 4, kept 12 of 15", "never": None}
    assert headline(report) == shown["evaluated"]
    table = stillroom(
        "runs", "--runs-dir", str(tmp_path / "runs"), env={**os.environ, "COLUMNS": "160"}
    )
    assert "last eval" in table.stdout and "learned 4 of 4, kept 12 of 15" in table.stdout
