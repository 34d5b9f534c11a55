"""What Stillroom promises about the teacher, tested as a user meets it.

Each test runs the real command (`generate`, `train`, `chat --compare`) in a
subprocess against the real loopback teacher (tests/teacher_server.py). The
environment holds no real provider key, is offline for the hub and sends anything
not on loopback to a dead proxy, so no test can reach a network even on code that
gets the endpoint wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from tests.engine.training import run_dir_from, write_facts, write_plan
from tests.engine.training import stillroom as run_stillroom
from tests.teacher_server import TeacherServer, answer_for

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
PLAN_KEY, FLAG_KEY = "STILLROOM_PLAN_KEY", "STILLROOM_FLAG_KEY"
KEYS = {  # each variable's value, so the server can tell which one was sent
    PLAN_KEY: "plan-key-value",
    FLAG_KEY: "flag-key-value",
    "DEEPSEEK_API_KEY": "deepseek-key-value",
}
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, the attempt fails at once


def stillroom(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The real CLI, with the test keys set and any non-loopback traffic sent nowhere."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.endswith("_API_KEY") and "PROXY" not in name.upper()
    }
    environment.update(KEYS)
    environment.update(
        HTTP_PROXY=DEAD_PROXY,
        HTTPS_PROXY=DEAD_PROXY,
        ALL_PROXY=DEAD_PROXY,
        NO_PROXY="127.0.0.1,localhost",
        HF_HUB_OFFLINE="1",
        **(env or {}),
    )
    return run_stillroom(*args, cwd=cwd, env=environment, timeout=timeout)


@pytest.fixture
def server():
    with TeacherServer(api_key=None) as server:
        yield server


@pytest.fixture
def other():
    with TeacherServer(api_key=None) as server:
        yield server


def write_prompts(path: Path, n: int = 3) -> bytes:
    """Prompts without a final newline: any write or repair would change the last one."""
    path.write_text("\n".join(f"Describe test case {i} of the teacher run" for i in range(n)))
    return path.read_bytes()


def teacher_plan(path: Path, **keys: str) -> Path:
    path.write_text("[teacher]\n" + "".join(f'{k} = "{v}"\n' for k, v in keys.items()))
    return path


# --- the output file is never the prompt file ----------------------------------------


def _same_file(tmp_path: Path, how: str) -> tuple[str, str, Path]:
    prompts = tmp_path / "prompts.txt"
    if how == "same path":
        return str(prompts), str(prompts), tmp_path
    if how == "./x and x":
        return "prompts.txt", "./prompts.txt", tmp_path
    other = tmp_path / "answers.jsonl"
    if how == "symbolic link":
        other.symlink_to(prompts)
    else:
        os.link(prompts, other)
    return str(prompts), str(other), tmp_path


@pytest.mark.parametrize("how", ["same path", "./x and x", "symbolic link", "hard link"])
def test_generate_never_writes_answers_into_its_own_prompt_file(server, tmp_path, how):
    """generate refuses an output file that is its prompt file, by any path, before it sends
    or writes anything."""
    before = write_prompts(tmp_path / "prompts.txt")
    prompts, out, cwd = _same_file(tmp_path, how)
    result = stillroom(
        "generate", "--prompts", prompts, "--out", out, "--base-url", server.base_url,
        "--model", "teacher-1", "--api-key-env", "", cwd=cwd,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "is the prompt file" in result.stderr and "--out" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "prompts.txt").read_bytes() == before
    assert server.hits == []


@pytest.mark.parametrize("out", ["notes.md", "manual.PDF", "page.htm"])
def test_generate_docs_never_writes_answers_into_a_document(server, tmp_path, out):
    """generate --docs refuses an output file named like a document (it may be one of the
    user's), before it reads, sends or writes anything."""
    (tmp_path / "docs").mkdir()
    document = tmp_path / "docs" / out
    document.write_bytes(b"# Notes\n\nThe valve opens at 2 bar.\n")
    result = stillroom(
        "generate", "--docs", "docs", "--out", f"docs/{out}", "--base-url", server.base_url,
        "--model", "teacher-1", "--api-key-env", "", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "named like a document" in result.stderr and "--out" in result.stderr
    assert document.read_bytes() == b"# Notes\n\nThe valve opens at 2 bar.\n"
    assert server.hits == []


def test_generate_docs_with_a_wrong_path_fails_before_calling_the_endpoint(server, tmp_path):
    """generate --docs names a path that does not exist at once, for free, and writes nothing."""
    result = stillroom(
        "generate", "--docs", "no-such-folder", "--out", "out.jsonl", "--base-url",
        server.base_url, "--model", "teacher-1", "--api-key-env", "", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2 and "no-such-folder does not exist" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out.jsonl").exists()
    assert server.hits == []


# --- the endpoint a plan names is the one used ---------------------------------------

# (plan [teacher] keys, flags, the server that must answer, model, key variable sent)
PRECEDENCE = {
    "plan without a provider": (
        {"base_url": "A", "model": "teacher-reasoner", "api_key_env": PLAN_KEY},
        [],
        "A", "teacher-reasoner", PLAN_KEY,
    ),
    "plan URL over its provider's preset": (
        {"provider": "deepseek", "base_url": "A", "model": "teacher-1", "api_key_env": PLAN_KEY},
        [],
        "A", "teacher-1", PLAN_KEY,
    ),
    "no provider, no key variable: no preset key is sent": (
        {"base_url": "A", "model": "teacher-1"},
        [],
        "A", "teacher-1", None,
    ),
    "flag URL over plan URL": (
        {"base_url": "A", "model": "teacher-1", "api_key_env": PLAN_KEY},
        ["--base-url", "B"],
        "B", "teacher-1", PLAN_KEY,
    ),
    "flag model over plan model": (
        {"base_url": "A", "model": "teacher-1", "api_key_env": PLAN_KEY},
        ["--model", "teacher-think"],
        "A", "teacher-think", PLAN_KEY,
    ),
    "flag key variable over plan key variable": (
        {"base_url": "A", "model": "teacher-1", "api_key_env": PLAN_KEY},
        ["--api-key-env", FLAG_KEY],
        "A", "teacher-1", FLAG_KEY,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", PRECEDENCE, ids=list(PRECEDENCE))
def test_the_endpoint_is_preset_then_plan_then_flags_field_by_field(server, other, tmp_path, case):
    """A plan's explicit URL, model and key variable always win over a preset, and the
    command line's over the plan's; a plan without a provider is never sent to a preset."""
    keys, flags, answering, model, key_variable = PRECEDENCE[case]
    urls = {"A": server.base_url, "B": other.base_url}
    keys = {k: urls.get(v, v) for k, v in keys.items()}
    flags = [urls.get(flag, flag) for flag in flags]
    write_prompts(tmp_path / "prompts.txt", 2)
    plan = teacher_plan(tmp_path / "plan.toml", **keys)
    result = stillroom(
        "generate", "--plan", str(plan), "--prompts", str(tmp_path / "prompts.txt"),
        "--out", str(tmp_path / "out.jsonl"), *flags,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    used, unused = (server, other) if answering == "A" else (other, server)
    assert unused.hits == []
    assert {r["model"] for r in used.requests} == {model}
    assert {key for _, _, key in used.hits} == {KEYS.get(key_variable, "EMPTY")}
    assert len(used.answered()) == 2


def test_a_provider_flag_brings_its_preset_and_a_plan_model_alone_keeps_the_default_url(tmp_path):
    """The presets fill only what nobody wrote: --provider openai replaces the plan's endpoint
    with OpenAI's, and a plan that names only a model keeps the default provider's URL."""
    write_prompts(tmp_path / "prompts.txt", 2)
    prompts = str(tmp_path / "prompts.txt")
    own = teacher_plan(tmp_path / "own.toml", base_url="http://127.0.0.1:9/v1", model="m")
    model_only = teacher_plan(tmp_path / "model.toml", model="deepseek-v4-pro")
    cases = [
        (["--plan", str(own)], "m at http://127.0.0.1:9/v1"),
        (["--plan", str(own), "--provider", "openai"], "gpt-4.1-mini at https://api.openai.com"),
        (["--plan", str(model_only)], "deepseek-v4-pro at https://api.deepseek.com"),
    ]
    for flags, shown in cases:
        result = stillroom("generate", *flags, "--prompts", prompts, "--dry-run")
        assert result.returncode == 0, result.stderr
        assert f"Dry run: {shown}" in result.stdout, (flags, result.stdout)


# --- keys are never taken, stored or shown -----------------------------------------------

GROQ = "gsk_" + "Vx7Qm2Lk9Pz4Rt8Wn3Jb6Hc1Yd5Fg0Sa" * 2
STRIPE = "sk_live_" + "51Hq8TgZk2Lm9Nx4Pw7Rb3Vc"
HEX32 = "3f2a9c8e7d6b5a4f3e2d1c0b9a8f7e6d"
# (flags, or a line of the plan's [teacher], and the key that must never be shown)
PASTED = {
    "groq key as the key variable": (["--api-key-env", GROQ], GROQ),
    "stripe-style key as the key variable": (["--api-key-env", STRIPE], STRIPE),
    "bare hex key as the key variable": (["--api-key-env", HEX32], HEX32),
    "key as the model": (["--model", "sk-" + HEX32], "sk-" + HEX32),
    "key in the URL": (["--base-url", f"http://127.0.0.1:9/v1?key={HEX32}"], HEX32),
    "key as the provider": (["--provider", GROQ], GROQ),
    "key in a plan's model": ('model = "hf_QpVnXrTbLmWsKdJfGhZcYaEuOi12"', "hf_QpVn"),
    "key in a plan's extra_body": (
        f'extra_body = {{ headers = {{ authorization = "Bearer {HEX32}" }} }}',
        HEX32,
    ),
}


@pytest.mark.parametrize("case", PASTED, ids=list(PASTED))
def test_a_pasted_key_is_refused_and_never_shown_or_stored(server, tmp_path, case):
    """A key typed into any teacher field is refused before anything is sent or written,
    and shown only as its first four characters and its length."""
    given, key = PASTED[case]
    if isinstance(given, str):  # a line of the plan
        (tmp_path / "plan.toml").write_text(f"[teacher]\n{given}\n")
        given = ["--plan", str(tmp_path / "plan.toml")]
    write_prompts(tmp_path / "prompts.txt")
    args = ["--base-url", server.base_url, "--model", "teacher-1", "--api-key-env", ""]
    result = stillroom(
        "generate", *args, *given, "--prompts", str(tmp_path / "prompts.txt"),
        "--out", str(tmp_path / "out.jsonl"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "characters)" in result.stderr  # shown as its first four characters and length
    assert key not in result.stdout + result.stderr
    assert server.hits == [] and not (tmp_path / "out.jsonl").exists()


def test_a_plan_holding_a_key_never_becomes_a_run(tmp_path):
    """stillroom train refuses a plan with a key in its teacher section, so no run folder,
    log or event ever holds it."""
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'[teacher]\nmodel = "{GROQ}"\n[dataset]\nsource = "{tmp_path / "data.jsonl"}"\n'
        f'[student]\nmodel = "{tmp_path / "student"}"\n[output]\nruns_dir = "{tmp_path / "runs"}"\n'
    )
    result = stillroom("train", str(plan))
    assert result.returncode == 2, result.stderr
    assert "looks like an API key" in result.stderr and GROQ not in result.stderr + result.stdout
    assert not (tmp_path / "runs").exists()


# --- a web page is not an API --------------------------------------------------------------


@pytest.fixture
def portal():
    with TeacherServer(portal=True) as portal:
        yield portal


@pytest.mark.parametrize("mode", [["--list-models"], ["--prompts", "prompts.txt"]])
def test_a_url_serving_a_web_page_is_named_not_an_api_at_once(portal, tmp_path, mode):
    """generate and --list-models at a URL that answers 200 with a web page (a captive portal,
    a web UI) say at once that it is no OpenAI-compatible endpoint and suggest the /v1 path."""
    write_prompts(tmp_path / "prompts.txt")
    base = portal.base_url.removesuffix("/v1")
    result = stillroom(
        "generate", *mode, "--base-url", base, "--model", "teacher-1", "--api-key-env", "",
        "--out", "out.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{base} is not an OpenAI-compatible endpoint" in result.stderr
    assert f"--base-url {base}/v1" in result.stderr
    assert len(portal.hits) == 1  # not retried
    assert not (tmp_path / "out.jsonl").exists()


def test_a_web_page_instead_of_an_answer_stops_at_once_and_keeps_the_answers(server, tmp_path):
    """A chat answer that is a web page stops generation at once with that reason, not retried
    for minutes; the answers finished before it stay in the output."""
    write_prompts(tmp_path / "prompts.txt", 6)
    server.fault("html", match="case 3 ", times=100)
    plan = tmp_path / "plan.toml"
    plan.write_text("[teacher]\nretry_base_s = 0.01\nretry_max_s = 0.02\nmax_retries = 3\n")
    result = stillroom(
        "generate", "--plan", str(plan), "--prompts", str(tmp_path / "prompts.txt"),
        "--out", str(tmp_path / "out.jsonl"), "--base-url", server.base_url,
        "--model", "teacher-1", "--api-key-env", "", "--concurrency", "1",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "is not an OpenAI-compatible endpoint" in result.stderr
    assert "stream ended" not in result.stderr and "Traceback" not in result.stderr
    assert [r["user"] for r in server.requests].count(
        "Describe test case 3 of the teacher run"
    ) == 1
    kept = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    asked = [record["messages"][-2]["content"] for record in kept]
    assert asked == [f"Describe test case {i} of the teacher run" for i in range(3)]
    assert [record["messages"][-1]["content"] for record in kept] == list(map(answer_for, asked))


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (404, "is not an OpenAI-compatible endpoint: it answered /v1/chat/completions with a web"),
        (403, "the key may not use this model or endpoint (403)"),
    ],
)
def test_an_error_page_in_html_is_named_not_printed(server, tmp_path, status, says):
    """A website's own 404 page for the chat route says the URL is no API; a firewall's 403
    page keeps its status's meaning. Neither is retried, and no HTML reaches the terminal."""
    write_prompts(tmp_path / "prompts.txt", 2)
    server.fault("html_error", status=status, times=100)
    result = stillroom(
        "generate", "--prompts", str(tmp_path / "prompts.txt"), "--out", str(tmp_path / "o.jsonl"),
        "--base-url", server.base_url, "--model", "teacher-1", "--api-key-env", "",
        "--concurrency", "1",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr
    assert "<" not in result.stderr.replace("<think>", ""), result.stderr
    assert len(server.requests) == 1  # not retried


def test_chat_compare_shows_a_web_page_teacher_as_a_short_note(tiny_model_dir, portal, tmp_path):
    """chat --compare with a teacher URL that serves a web page still shows the student's and the
    base's answers, and in the teacher's place one short note that the URL is no API."""
    plan_file = write_plan(tmp_path, tiny_model_dir, write_facts(tmp_path), max_steps=2)
    trained = stillroom("train", str(plan_file), timeout=600)
    assert trained.returncode == 0, trained.stderr
    run = run_dir_from(trained.stdout)
    plan = tomllib.loads((run / "plan.toml").read_text())
    plan["teacher"] = {  # no provider: resolved as every plan is
        "base_url": portal.base_url, "model": "teacher-1", "api_key_env": "",
        "retry_base_s": 0.01, "retry_max_s": 0.02, "max_retries": 2,
    }  # fmt: skip
    (run / "plan.toml").write_text(tomli_w.dumps(plan))
    result = stillroom("chat", str(run), "--prompt", "Hello?", "--compare", "--max-new-tokens", "4")
    assert result.returncode == 0, result.stderr
    student, teacher = result.stdout.split("== base ==")[0], result.stdout.split("== teacher ==")[1]
    assert student.startswith("== student ==")
    note = teacher.strip()
    assert note.startswith("(teacher skipped: ") and len(note) < 200
    assert f"{portal.base_url} is not an OpenAI-compatible endpoint" in note
    assert len(portal.hits) == 1  # not retried
