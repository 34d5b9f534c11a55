"""`stillroom doctor` as a user runs it, on this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def doctor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "120", **env},
    )


def test_doctor_reports_every_check_and_never_prints_the_key():
    result = doctor(DEEPSEEK_API_KEY="sk-do-not-print-me")
    assert result.returncode in (0, 1), result.stderr
    for name in ("torch", "backend", "disk", "teacher key", "offline"):
        assert name in result.stdout
    assert "DEEPSEEK_API_KEY is set" in result.stdout
    assert "sk-do-not-print-me" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_doctor_json_names_the_backend_and_missing_key(tmp_path, tiny_model_dir):
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[teacher]\napi_key_env = "NO_SUCH_KEY_VAR"\n[output]\nruns_dir = "runs/deeper"\n'
        f'[student]\nmodel = "{tiny_model_dir}"\n'
    )
    result = doctor(str(plan), "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["teacher key"]["status"] == "warn"
    assert "NO_SUCH_KEY_VAR is not set" in checks["teacher key"]["detail"]
    assert checks["backend"]["detail"].split(":")[0] in ("unsloth", "hf")
    assert "GB free under" in checks["disk"]["detail"]
    if checks.get("gpu", {}).get("status") == "warn":  # no driver: one line, CPU path goes on
        assert checks["gpu"]["detail"].startswith("no NVIDIA driver found")
        assert checks["backend"]["detail"].startswith("hf: no CUDA GPU")
        assert result.returncode == 0


def test_doctor_fails_a_plan_that_insists_on_unsloth_without_cuda(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[student]\nbackend = "unsloth"\n')
    result = doctor(str(plan), "--json")
    backend = next(c for c in json.loads(result.stdout) if c["name"] == "backend")
    if backend["status"] == "ok":  # a CUDA box with Unsloth: nothing to fail
        assert backend["detail"].startswith("unsloth")
        return
    assert result.returncode == 1
    assert "student.backend = 'auto'" in backend["hint"]


def test_offline_variables_are_reported_when_set():
    result = doctor("--json", HF_HUB_OFFLINE="1", UNSLOTH_DISABLE_STATISTICS="1")
    offline = next(c for c in json.loads(result.stdout) if c["name"] == "offline")
    assert offline["detail"] == "HF_HUB_OFFLINE=1 and UNSLOTH_DISABLE_STATISTICS=1"
