"""`stillroom generate` as a user runs it: a real subprocess against the loopback teacher."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.documents import write_folder
from tests.teacher_server import TeacherServer, answer_for

KEY_VAR = "STILLROOM_TEST_TEACHER_KEY"


@pytest.fixture
def server():
    with TeacherServer(latency_s=0.03) as server:
        yield server


def command(server: TeacherServer, tmp_path, *extra: str, source: str = "--prompts") -> list[str]:
    """The generate command against ``server``; ``source`` ``--docs`` reads ``tmp_path/docs``."""
    given = tmp_path / ("docs" if source == "--docs" else "prompts.txt")
    return [
        sys.executable,
        "-m",
        "tui.cli",
        "generate",
        source,
        str(given),
        "--out",
        str(tmp_path / "out.jsonl"),
        "--base-url",
        server.base_url,
        "--model",
        "teacher-1",
        "--api-key-env",
        KEY_VAR,
        *extra,
    ]


def environment(server: TeacherServer) -> dict[str, str]:
    return {**os.environ, KEY_VAR: server.api_key}


def write_prompts(tmp_path, n: int) -> list[str]:
    prompts = [f"Describe test case {i} of the teacher run" for i in range(n)]
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n")
    return prompts


def test_sigkill_mid_run_then_resume_gives_each_answer_once(server, tmp_path):
    prompts = write_prompts(tmp_path, 150)
    out = tmp_path / "out.jsonl"
    child = subprocess.Popen(
        command(server, tmp_path, "--concurrency", "4"),
        env=environment(server),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 20):
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    killed_at = out.read_text().count("\n")
    assert 20 <= killed_at < 150
    with open(out, "a") as handle:  # as if the kill had landed mid-write
        handle.write('{"messages": [{"role": "user", "content": "Describe')

    result = subprocess.run(
        command(server, tmp_path, "--concurrency", "8"),
        env=environment(server),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]  # all of it parses
    asked = Counter(r["messages"][1]["content"] for r in records)
    assert asked == Counter(prompts)
    assert all(
        r["messages"][2]["content"] == answer_for(r["messages"][1]["content"]) for r in records
    )
    assert "torn last line" in result.stderr
    assert server.api_key not in out.read_text() + result.stdout + result.stderr


def test_exit_codes_and_messages(server, tmp_path):
    write_prompts(tmp_path, 5)
    env = environment(server)
    missing_key = {k: v for k, v in env.items() if k != KEY_VAR}
    result = subprocess.run(
        command(server, tmp_path), env=missing_key, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and f"export {KEY_VAR}=" in result.stderr
    assert "Traceback" not in result.stderr

    result = subprocess.run(
        command(server, tmp_path, "--dry-run"), env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "to send" in result.stdout and not server.requests

    server.fault("status", status=503, match="case 2 ", times=100)
    plan = tmp_path / "plan.toml"
    plan.write_text("[teacher]\nretry_base_s = 0.01\nretry_max_s = 0.02\nmax_retries = 2\n")
    result = subprocess.run(
        command(server, tmp_path, "--plan", str(plan)),
        env={**env, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "Run the same command again" in result.stderr
    assert sum(1 for _ in open(tmp_path / "out.jsonl")) == 4

    result = subprocess.run(
        command(server, tmp_path, "--list-models"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "teacher-reasoner" in result.stdout.split()


# --- generate --docs ------------------------------------------------------------------


def docs_command(server: TeacherServer, tmp_path, *extra: str) -> list[str]:
    """Small chunks and four questions each, so the folder of tests/documents.py is many asks."""
    small = ("--chunk-tokens", "80", "--questions-per-chunk", "4")
    return command(server, tmp_path, *small, *extra, source="--docs")


def generate_docs(server: TeacherServer, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        docs_command(server, tmp_path, *extra),
        env=environment(server),
        capture_output=True,
        text=True,
        timeout=120,
    )


def asked(out) -> Counter:
    records = [json.loads(line) for line in out.read_text().splitlines()]  # every line parses
    return Counter(
        (r["meta"]["source"]["chunk_hash"], r["messages"][1]["content"]) for r in records
    )


def test_sigkill_mid_run_then_resume_answers_each_question_once(server, tmp_path):
    write_folder(tmp_path / "docs")
    out = tmp_path / "out.jsonl"
    child = subprocess.Popen(
        docs_command(server, tmp_path, "--concurrency", "2"),
        env=environment(server),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 5):
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    killed_at = asked(out)
    assert killed_at and max(killed_at.values()) == 1

    result = generate_docs(server, tmp_path, "--concurrency", "4")
    assert result.returncode == 0, result.stderr
    done = asked(out)
    assert max(done.values()) == 1 and len(done) > sum(killed_at.values())
    answers = [r for r in server.requests if "<reference>" in r["user"]]
    assert len(done) <= len(answers) <= len(done) + 2  # only the 2 in flight at the kill, again
    chunks = [json.loads(line)["chunk_hash"] for line in open(tmp_path / "out.questions.jsonl")]
    assert len(chunks) == len(set(chunks))
    assert "scanned PDF" in result.stderr and "photo.png" in result.stderr
    assert server.api_key not in out.read_text() + result.stdout + result.stderr


def test_dry_run_json_counts_documents_pages_chunks_and_cost(server, tmp_path):
    write_folder(tmp_path / "docs")
    result = generate_docs(server, tmp_path, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    forecast = json.loads(result.stdout)
    assert (forecast["documents"], forecast["pages"]) == (5, 2)
    assert forecast["chunks"] >= 5 and forecast["tokens"] > 0
    assert {s["file"].rsplit("/", 1)[-1]: s["scanned"] for s in forecast["skipped"]} == {
        "photo.png": False,
        "warranty-scan.pdf": True,
    }
    assert forecast["questions"]["requests"] > 0
    assert forecast["answers"]["to_send"] == 4 * forecast["questions"]["requests"]
    assert not server.requests
