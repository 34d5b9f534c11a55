"""Generation end to end: the real ``openai`` client against a loopback server with faults."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from engine import events as ev
from engine import spawn
from engine.plan import Plan, TeacherPlan
from engine.teacher.generate import estimate, questions_path, run
from tests.teacher_server import TeacherServer, answer_for, reasoning_for

KEY_VAR = "STILLROOM_TEST_TEACHER_KEY"


@pytest.fixture
def server():
    with TeacherServer() as server:
        yield server


@pytest.fixture
def make(tmp_path, server, monkeypatch):
    """A teacher plan pointed at the server, with fast retries and a prompt file of ``n`` lines."""
    monkeypatch.setenv(KEY_VAR, server.api_key)

    def make(n: int = 20, **changes) -> TeacherPlan:
        prompts = tmp_path / "prompts.txt"
        prompts.write_text("".join(f"Explain idea number {i} in one line\n" for i in range(n)))
        values = {
            "provider": "custom",
            "base_url": server.base_url,
            "model": "teacher-1",
            "api_key_env": KEY_VAR,
            "prompts": str(prompts),
            "output": str(tmp_path / "out.jsonl"),
            "concurrency": 4,
            "timeout_s": 2.0,
            "retry_base_s": 0.02,
            "retry_max_s": 0.1,
            "max_retries": 4,
            "dedupe_threshold": 0.95,
            **changes,
        }
        return TeacherPlan(**values)

    return make


def generate(teacher: TeacherPlan, should_stop=lambda: False):
    events: list[ev.Event] = []
    summary = run(teacher, events.append, should_stop)
    return summary, events


def lines(teacher: TeacherPlan) -> list[dict]:
    with open(teacher.output, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]  # every line must parse


def users(teacher: TeacherPlan) -> Counter:
    return Counter(r["messages"][1]["content"] for r in lines(teacher))


def test_every_prompt_answered_once_with_meta(make):
    teacher = make(12, stream=False)
    summary, events = generate(teacher)
    assert summary.complete and summary.answered == 12 and summary.failed == 0
    records = lines(teacher)
    assert len(records) == 12 and set(users(teacher).values()) == {1}
    first = records[0]
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
    assert first["messages"][2]["content"] == answer_for(first["messages"][1]["content"])
    assert set(first["meta"]) >= {
        "model",
        "finish_reason",
        "prompt_tokens",
        "completion_tokens",
        "latency_s",
    }
    assert first["meta"]["finish_reason"] == "stop" and first["meta"]["flags"] == []
    assert events[-1].type == "finished" and [e.type for e in events].count("finished") == 1
    last = [e for e in events if isinstance(e, ev.Progress)][-1]
    assert (last.done, last.total, last.in_flight) == (12, 12, 0)
    assert last.prompt_tokens == summary.prompt_tokens > 0


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_faults_are_retried_and_answers_stay_exactly_once(make, server, stream):
    server.fault("status", status=429, retry_after=0.05, match="number 1 ", times=2)
    server.fault("status", status=500, match="number 2 ")
    server.fault("status", status=503, match="number 3 ")
    server.fault("sleep", seconds=1.5, match="number 4 ")  # past the 0.5 s timeout
    server.fault("malformed", match="number 5 ")
    server.fault("drop", match="number 6 ")
    if stream:
        server.fault("cut", match="number 7 ")
    teacher = make(10, stream=stream, timeout_s=0.5)
    summary, _ = generate(teacher)
    assert summary.complete and summary.retries >= 7
    assert users(teacher) == Counter({f"Explain idea number {i} in one line": 1 for i in range(10)})
    asked = Counter(server.answered())
    assert asked["Explain idea number 1 in one line"] == 1


def test_retry_after_is_honoured(make, server):
    server.fault("status", status=429, retry_after=0.4, match="number 0 ")
    teacher = make(1)
    generate(teacher)
    times = [r["t"] for r in server.requests]
    assert times[1] - times[0] >= 0.4


def test_rerun_skips_answered_prompts_by_content(make, server, tmp_path):
    teacher = make(6)
    generate(teacher)
    prompts = tmp_path / "prompts.txt"
    lines_now = prompts.read_text().splitlines()
    prompts.write_text("\n".join(["A brand new question about caching", *reversed(lines_now)]))
    server.requests.clear()
    summary, _ = generate(teacher)
    assert (summary.already, summary.answered) == (6, 1)
    assert server.answered() == ["A brand new question about caching"]
    assert len(lines(teacher)) == 7


def test_retries_exhausted_is_incomplete_then_resumable(make, server):
    server.fault("status", status=503, match="number 3 ", times=3)
    teacher = make(5, max_retries=2)
    summary, events = generate(teacher)
    assert summary.stopped == "incomplete" and summary.failed == 1 and summary.answered == 4
    assert events[-1].type == "error" and "run the same command again" in events[-1].hint.lower()
    summary, _ = generate(teacher)
    assert summary.complete and (summary.already, summary.answered) == (4, 1)
    assert sum(users(teacher).values()) == 5


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, "auth"), (402, "balance"), (400, "request"), (403, "auth")],
)
def test_unfixable_errors_stop_at_once(make, server, status, kind):
    server.fault("status", status=status, times=1000)
    teacher = make(30, concurrency=2)
    summary, events = generate(teacher)
    assert summary.stopped == "error" and summary.error.kind == kind and summary.error.hint
    assert len(server.requests) <= 3  # the ones in flight, no retries, no further prompts
    assert events[-1].type == "error" and events[-1].kind == kind


def test_wrong_key_and_missing_key_and_model(make, server, monkeypatch):
    monkeypatch.setenv(KEY_VAR, "sk-wrong-key-123456")
    summary, events = generate(make(3))
    assert summary.error.kind == "auth" and "sk-wrong-key-123456" not in str(summary.error)
    monkeypatch.delenv(KEY_VAR)
    summary, _ = generate(make(3))
    assert summary.error.kind == "key" and KEY_VAR in summary.error.hint
    monkeypatch.setenv(KEY_VAR, server.api_key)
    summary, _ = generate(make(3, model="no-such-model"))
    assert summary.error.kind == "model" and "teacher-1" in summary.error.hint
    assert not server.requests  # all caught by GET /models, before a token was paid for


def test_unreachable_base_url(make):
    summary, events = generate(make(3, base_url="http://127.0.0.1:9/v1"))
    assert summary.error.kind == "unreachable" and "127.0.0.1:9" in str(summary.error)


def test_a_prompt_too_long_for_the_context_fails_alone(make, server):
    message = "This model's maximum context length is 8192 tokens"
    server.fault("status", status=400, message=message, match="number 2 ")
    summary, _ = generate(make(4))
    assert summary.stopped == "incomplete" and (summary.answered, summary.failed) == (3, 1)
    assert "context" in summary.first_failure


@pytest.mark.parametrize(
    ("model", "fault"),
    [("teacher-reasoner", None), ("teacher-think", None), ("teacher-1", "close_only")],
    ids=["reasoning_content", "inline-think", "closing-tag-only"],
)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_reasoning_is_captured_in_one_field(make, server, model, fault, stream):
    if fault:
        server.fault(fault, times=100)
    teacher = make(3, model=model, stream=stream)
    generate(teacher)
    for record in lines(teacher):
        user = record["messages"][1]["content"]
        assert record["reasoning"] == reasoning_for(user)
        assert record["messages"][2]["content"] == answer_for(user)


def test_quality_flags_are_counted_and_marked(make, server):
    server.fault("length", match="number 0 ")
    server.fault("refusal", match="number 1 ")
    server.fault("empty", match="number 2 ")
    teacher = make(5)
    summary, events = generate(teacher)
    assert summary.flagged == {"length": 1, "empty": 1, "refusal": 1}
    by_user = {r["messages"][1]["content"]: r["meta"]["flags"] for r in lines(teacher)}
    assert by_user["Explain idea number 0 in one line"] == ["length"]
    assert by_user["Explain idea number 4 in one line"] == []
    warnings = [e.message for e in events if e.type == "warning"]
    assert any("refusals" in w for w in warnings) and any(
        "cut at max_tokens" in w for w in warnings
    )


def test_key_is_never_written_anywhere(make, server, tmp_path):
    server.fault("status", status=401)  # the server echoes the key it was given
    teacher = make(5)
    summary, events = generate(teacher)
    summary, more = generate(teacher)
    assert summary.complete
    key = server.api_key
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert key not in path.read_text(encoding="utf-8", errors="replace"), path
    for event in events + more:
        assert key not in ev.encode(event)
    assert key not in str(summary) and key not in teacher.model_dump_json()


def test_budget_stops_cleanly_and_resumes(make, server):
    # 1 token = $1: an answer costs about $20, so a $70 cap allows two or three
    teacher = make(
        10,
        concurrency=1,
        max_tokens=30,
        price_input_per_mtok=1e6,
        price_output_per_mtok=1e6,
        budget_usd=70,
    )
    summary, events = generate(teacher)
    assert summary.stopped == "budget" and 1 <= summary.answered < 10
    assert summary.cost_usd <= 70
    assert events[-1].type == "cancelled"
    summary, _ = generate(teacher.model_copy(update={"budget_usd": None}))
    assert summary.complete and sum(users(teacher).values()) == 10


def test_should_stop_finishes_in_flight_and_keeps_them(make, server):
    server.latency_s = 0.05
    teacher = make(40, concurrency=4)
    summary, events = generate(teacher, should_stop=lambda: len(server.requests) >= 6)
    assert summary.stopped == "cancelled" and events[-1].type == "cancelled"
    assert len(lines(teacher)) == summary.answered < 40
    assert len(server.requests) == summary.answered  # nothing asked and then thrown away


def test_dry_run_estimates_without_sending(make, server):
    teacher = make(10, price_input_per_mtok=1.0, price_output_per_mtok=2.0, max_tokens=100)
    forecast = estimate(teacher)
    assert (forecast.prompts, forecast.to_send, forecast.already) == (10, 10, 0)
    assert forecast.cost_max_usd == pytest.approx((forecast.prompt_tokens + 10 * 100 * 2) / 1e6)
    assert forecast.cost_usd() <= forecast.cost_max_usd
    assert not server.requests
    generate(make(10, limit=6))
    again = estimate(teacher)
    assert (again.already, again.to_send, again.answer_tokens_measured) == (6, 4, True)


def test_topic_questions_are_deduplicated_kept_and_answered(make, server):
    teacher = make(
        topic="database internals", prompts="", count=30, concurrency=3, dedupe_threshold=0.8
    )
    summary, events = generate(teacher)
    assert summary.complete and summary.total == 30
    assert summary.diversity.near_duplicates > 0  # the server repeats every fifth question
    questions = [json.loads(x)["question"] for x in open(questions_path(teacher))]
    assert len(questions) == len(set(questions)) >= 30
    assert all(u.startswith("Question ") for u in users(teacher))
    assert any(e.type == "log" and "near duplicates" in e.line for e in events)
    asked = len(server.requests)
    summary, _ = generate(teacher)  # the questions are kept: nothing is bought twice
    assert summary.complete and summary.answered == 0 and len(server.requests) == asked


CHINESE_PROMPTS = ["什么是知识蒸馏？", "如何用 LoRA 微调 Qwen2.5？", "为什么要做 4 位量化？"]


def _systems(server) -> set[str]:
    """The system prompts the teacher was sent, over every chat request."""
    return {
        m["content"]
        for r in server.requests
        for m in r["body"]["messages"]
        if m["role"] == "system"
    }


def test_chinese_prompts_get_a_chinese_system_prompt_and_the_plan_can_keep_english(
    make, server, tmp_path
):
    """A Chinese prompt file is asked with the Chinese default system prompt, so the teacher
    answers in the dataset's language; teacher.language = "en" keeps the English one, and a
    system prompt written in the plan is always sent as written."""
    prompts = tmp_path / "zh.txt"
    prompts.write_text("\n".join(CHINESE_PROMPTS) + "\n", encoding="utf-8")
    teacher = make(prompts=str(prompts), stream=False)
    summary, events = generate(teacher)
    assert summary.complete and summary.answered == 3
    assert _systems(server) == {"你是一个乐于助人的助手。"}
    assert {r["messages"][0]["content"] for r in lines(teacher)} == {"你是一个乐于助人的助手。"}
    assert any(e.type == "log" and "你是一个乐于助人的助手" in e.line for e in events)
    asked = len(server.requests)
    summary, _ = generate(teacher)  # resumed: the same system prompt, nothing asked twice
    assert summary.answered == 0 and len(server.requests) == asked

    server.requests.clear()
    english = make(prompts=str(prompts), output=str(tmp_path / "en.jsonl"), language="en")
    assert generate(english)[0].answered == 3
    assert _systems(server) == {"You are a helpful assistant."}

    server.requests.clear()
    own = make(prompts=str(prompts), output=str(tmp_path / "own.jsonl"), system="Be brief.")
    assert generate(own)[0].answered == 3
    assert _systems(server) == {"Be brief."}


def test_english_prompts_keep_the_english_system_prompt_unless_the_plan_asks_for_chinese(
    make, server, tmp_path
):
    """English prompts are asked as before; teacher.language = "zh" asks in Chinese anyway."""
    assert generate(make(4))[0].answered == 4
    assert _systems(server) == {"You are a helpful assistant."}
    server.requests.clear()
    assert generate(make(4, output=str(tmp_path / "zh.jsonl"), language="zh"))[0].answered == 4
    assert _systems(server) == {"你是一个乐于助人的助手。"}


def test_a_chinese_topic_asks_for_questions_in_chinese(make, server):
    """The questions for a Chinese topic are asked for in Chinese, so they come back Chinese."""
    teacher = make(topic="大模型蒸馏", prompts="", count=3, concurrency=1)
    summary, _ = generate(teacher)
    ask = server.requests[0]["body"]["messages"]
    assert ask[0] == {"role": "system", "content": "你负责编写考试题和面试题。"}
    assert "请围绕“大模型蒸馏”写出 3 个各不相同的问题。" in ask[1]["content"]
    answered = [r for r in server.requests[1:] if "请围绕" not in r["user"]]
    assert answered and all(
        r["body"]["messages"][0]["content"] == "你是一个乐于助人的助手。" for r in answered
    )


def test_a_run_begun_with_the_english_system_prompt_resumes_with_it(make, server, tmp_path):
    """Answers bought before the teacher spoke Chinese are not bought again: a resumed run
    keeps the system prompt its answers were asked with."""
    prompts = tmp_path / "zh.txt"
    prompts.write_text("\n".join(CHINESE_PROMPTS) + "\n", encoding="utf-8")
    begun = make(prompts=str(prompts), language="en", limit=2)
    assert generate(begun)[0].answered == 2
    server.requests.clear()
    summary, _ = generate(make(prompts=str(prompts)))
    assert summary.answered == 1 and summary.already == 2
    assert _systems(server) == {"You are a helpful assistant."}


def start_child(teacher: TeacherPlan, tmp_path, extra: tuple[str, ...] = ()):
    """``python -m engine generate --plan PLAN`` as the Teacher step starts it: the plan file
    names the key's variable, the key itself is only in the environment."""
    plan = tmp_path / "teacher.generate.toml"
    plan.write_text(Plan(teacher=teacher).to_toml())
    log = tmp_path / "teacher.generate.log"
    argv = ["--plan", str(plan), *extra]
    return spawn.start_piped("generate", argv, log=log), argv, log


def test_the_generate_job_says_the_documented_events_and_writes_the_answers(make, server, tmp_path):
    teacher = make(6, concurrency=2)
    child, argv, log = start_child(teacher, tmp_path)
    cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes()
    events = list(spawn.read_pipe(child, log))
    assert child.returncode == 0 and server.api_key.encode() not in cmdline
    assert not any(server.api_key in a for a in argv)
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["result", "finished"] and kinds.count("started") == 1
    started = next(e for e in events if isinstance(e, ev.Started))
    assert (started.job, started.backend, started.model) == ("generate", "api", "teacher-1")
    assert started.device == server.base_url and started.pid == child.pid
    progress = [e for e in events if isinstance(e, ev.Progress)]
    assert {(p.job, p.stage) for p in progress} == {("generate", "answers")}
    assert {p.done for p in progress} >= set(range(1, 7))  # one at least per answer on disk
    assert progress[-1].eta_s == 0.0 and any(p.eta_s for p in progress)
    result = events[-2]
    assert result.paths == {"answers": teacher.output}
    assert {k: result.counts[k] for k in ("total", "done", "answered", "failed", "already")} == {
        "total": 6, "done": 6, "answered": 6, "failed": 0, "already": 0,
    }  # fmt: skip
    assert set(users(teacher).values()) == {1} and len(users(teacher)) == 6
    said = "\n".join(ev.encode(e) for e in events) + log.read_text()
    assert server.api_key not in said


def test_a_killed_generate_job_rerun_asks_only_the_prompts_not_yet_on_disk(make, server, tmp_path):
    server.latency_s = 0.1
    teacher = make(12, concurrency=2)
    child, _, log = start_child(teacher, tmp_path)
    for event in spawn.read_pipe(child, log):
        if isinstance(event, ev.Progress) and event.done >= 4:
            child.kill()  # no chance to finish what is in flight
            break
    child.wait()
    kept = set(users(teacher))
    asked_before = len(server.requests)
    assert 4 <= len(kept) < 12

    server.latency_s = 0.0
    rerun, _, log = start_child(teacher, tmp_path)
    events = list(spawn.read_pipe(rerun, log))
    assert events[-1].type == "finished" and events[-2].counts["already"] == len(kept)
    asked_again = {r["user"] for r in server.requests[asked_before:]}
    assert not asked_again & kept  # nothing on disk is asked (or paid for) twice
    assert users(teacher) == Counter({f"Explain idea number {i} in one line": 1 for i in range(12)})


def test_a_generate_job_with_a_wrong_key_ends_in_one_error_event_not_a_traceback(
    make, server, tmp_path, monkeypatch
):
    monkeypatch.setenv(KEY_VAR, "sk-wrong-0123456789abcdefghij")
    child, _, log = start_child(make(3), tmp_path)
    out, _ = child.communicate()
    events = [ev.decode(line) for line in out.splitlines()]  # stdout: events only
    assert [e.type for e in events] == ["result", "error"] and child.returncode == 1
    error = events[-1]
    assert error.kind == "auth" and "401" in error.message and error.hint
    assert "Traceback" not in out + log.read_text()
    assert "0123456789abcdefghij" not in out + log.read_text()
