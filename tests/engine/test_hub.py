"""A student model that cannot be had is named within seconds, with the fix, as a student problem.

The hub here is a server on loopback: one that accepts connections and never answers (a
firewall that drops packets), or one that answers "no such repository" (a typo).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.engine.training import stillroom, write_facts, write_plan

# Long enough for a Python start and the hub check; the libraries' own retries took 50-55 s.
FAST_S = 40


@pytest.fixture
def silent_hub() -> Iterator[str]:
    """A hub address that takes connections and never replies."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


class _NoSuchRepo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        body = json.dumps({"error": "Repository not found"}).encode()
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def empty_hub() -> Iterator[str]:
    """A hub that answers every model id with "Repository not found"."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoSuchRepo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COLUMNS": "200", **env}
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if name not in env:
            environment.pop(name, None)
    return stillroom(*args, cwd=cwd, env=environment, timeout=FAST_S)


def cache_copy(tiny_model_dir: Path, cache: Path, repo_id: str) -> Path:
    """``tiny_model_dir`` laid out in a hub cache as ``repo_id``, as a past download leaves it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    shutil.copytree(tiny_model_dir, repo / "snapshots" / ("0" * 40))
    return cache


def test_an_unreachable_hub_is_named_with_both_fixes(tmp_path, silent_hub):
    """A hub that does not answer costs seconds, not a minute, and says what to do."""
    data = write_facts(tmp_path)
    result = run("inspect", str(data), "--model", "acme/student-7b", cwd=tmp_path,
                 HF_ENDPOINT=silent_hub, HF_HUB_CACHE=str(tmp_path / "cache"))  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Student model 'acme/student-7b' could not be fetched" in result.stderr
    assert f"the hub at {silent_hub} could not be reached" in result.stderr
    assert "no copy is in the Hugging Face cache" in result.stderr
    assert "local model folder" in result.stderr and "HF_HUB_OFFLINE=1" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_cached_model_is_used_when_the_hub_is_down(tmp_path, silent_hub, tiny_model_dir):
    """With the hub down, a model downloaded before still loads, from the cache."""
    cache = cache_copy(tiny_model_dir, tmp_path / "cache", "acme/tiny")
    data = write_facts(tmp_path)
    result = run("inspect", str(data), "--model", "acme/tiny", "--json", cwd=tmp_path,
                 HF_ENDPOINT=silent_hub, HF_HUB_CACHE=str(cache))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tokens"]["max"] > 0


def test_a_misspelt_model_id_is_called_a_typo(tmp_path, empty_hub):
    """A hub that has no such model says so, and suggests checking the spelling."""
    data = write_facts(tmp_path)
    result = run("inspect", str(data), "--model", "acme/tiny-studnet", cwd=tmp_path,
                 HF_ENDPOINT=empty_hub, HF_HUB_CACHE=str(tmp_path / "cache"))  # fmt: skip
    assert result.returncode == 2
    assert "no model of that name on the hub" in result.stderr
    assert "Check the spelling" in result.stderr


def test_training_calls_a_missing_model_a_student_problem(tmp_path):
    """Train stops before any data work, and the error is the student's, not the dataset's."""
    plan = write_plan(tmp_path, tmp_path / "no-such-model", write_facts(tmp_path))
    result = run("train", str(plan), cwd=tmp_path, HF_HUB_OFFLINE="1")
    assert result.returncode != 0
    assert "Student model" in result.stdout + result.stderr
    events_file = next((tmp_path / "runs").glob("*/events.jsonl"))
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert events[-1]["type"] == "error" and events[-1]["kind"] == "student"


def test_doctor_checks_the_student_model_and_the_hub(tmp_path, silent_hub):
    """doctor asks the hub for real: unreachable is a warning, a model nowhere is a failure."""
    plan = tmp_path / "plan.toml"
    plan.write_text('[student]\nmodel = "acme/not-downloaded"\n')
    result = run("doctor", str(plan), "--json", cwd=tmp_path, HF_ENDPOINT=silent_hub,
                 HF_HUB_CACHE=str(tmp_path / "cache"))  # fmt: skip
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert result.returncode == 1
    assert checks["student model"]["status"] == "fail"
    assert "could not be fetched" in checks["student model"]["detail"]
    assert checks["offline"]["status"] == "warn"
    assert "could not be reached" in checks["offline"]["detail"]
    assert checks["precision"]["status"] in ("ok", "fail")
    assert "memory fit" in checks


def test_doctor_does_not_judge_a_modelscope_student_by_hugging_face(tmp_path, silent_hub):
    """With student.source = "modelscope", an unreachable Hugging Face hub is no warning:
    doctor says the student comes from ModelScope and that it does not probe it."""
    plan = tmp_path / "plan.toml"
    plan.write_text('[student]\nmodel = "unsloth/Qwen2.5-1.5B-Instruct"\nsource = "modelscope"\n')
    result = run("doctor", str(plan), "--json", cwd=tmp_path, HF_ENDPOINT=silent_hub,
                 HF_HUB_CACHE=str(tmp_path / "cache"), UNSLOTH_DISABLE_STATISTICS="")  # fmt: skip
    offline = {c["name"]: c for c in json.loads(result.stdout)}["offline"]
    assert offline["status"] == "ok", offline
    assert "ModelScope" in offline["detail"]
    assert "could not be reached" not in offline["detail"]


def test_doctor_accepts_a_local_student_folder(tmp_path, tiny_model_dir):
    plan = tmp_path / "plan.toml"
    plan.write_text(f'[student]\nmodel = "{tiny_model_dir}"\n')
    result = run("doctor", str(plan), "--json", cwd=tmp_path, HF_HUB_OFFLINE="1")
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["student model"]["status"] == "ok"
    assert "local folder" in checks["student model"]["detail"]
