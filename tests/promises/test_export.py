"""What `stillroom export` promises: it never deletes a folder it did not write, and never
runs a converter you did not name. Each test exports a copy of the real trained facts run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.export_target import new_partial
from tests.engine.training import REPO, stillroom
from tests.promises.refusal import refused_cleanly

RUN = "runs/t-facts"
MARKER = "stillroom-export.json"


@pytest.fixture
def project(tmp_path: Path, facts_run: Path) -> Path:
    """A user's folder: notes of theirs, a sub-folder they work in, and the trained run."""
    home = tmp_path / "project"
    (home / "work" / "here").mkdir(parents=True)
    (home / "notes.txt").write_text("mine\n")
    (home / "work" / "draft.txt").write_text("mine too\n")
    (home / "work" / "here" / "todo.txt").write_text("and this\n")
    (home / "models").mkdir()
    (home / "models" / "keep.bin").write_bytes(b"weights of mine")
    shutil.copytree(facts_run, home / RUN, ignore=shutil.ignore_patterns("eval", "export"))
    return home


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize(
    ("out", "says"),
    [
        (".", "is the working folder"),
        ("..", "holds the working folder"),
        ("/", "is the root folder"),
        ("../../" + RUN, "is inside the runs folder"),
        ("../../runs", "is the runs folder"),
        ("../../" + RUN + "/adapter", "is inside the runs folder"),
        ("todo.txt", "is an existing file"),
        ("../../models", "holds files Stillroom did not write"),
    ],
)
def test_export_never_deletes_a_folder_it_did_not_write(project, out, says):
    """Export never deletes a folder it did not write: `--out` at the working folder, a parent,
    `/`, a run, the runs folder, a file or a folder of the user's is refused with a hint."""
    before = files_under(project)
    here = project / "work" / "here"
    for force in ([], ["--force"]):
        result = stillroom(
            "export", "../../" + RUN, "--format", "adapter", "--out", out, *force, cwd=here
        )
        assert refused_cleanly(result, "will not export to", says), result.stderr
    assert files_under(project) == before


def test_an_export_is_marked_and_only_an_earlier_export_is_replaced(project):
    """Every export holds a Stillroom marker; exporting again replaces only an earlier
    export of the same format, and one of another format only with --force."""
    out = project / "exports" / "student"
    adapter = ["export", RUN, "--format", "adapter", "--out", str(out)]
    assert stillroom(*adapter, cwd=project).returncode == 0
    assert json.loads((out / MARKER).read_text())["format"] == "adapter"
    (out / "stale.txt").write_text("left by the earlier export's user")
    again = stillroom(*adapter, cwd=project)
    assert again.returncode == 0, again.stderr
    assert not (out / "stale.txt").exists() and (out / "adapter_config.json").is_file()

    merged = ["export", RUN, "--format", "merged", "--out", str(out)]
    refused = stillroom(*merged, cwd=project)
    assert refused_cleanly(refused, "holds a Stillroom adapter export", "--force")
    assert (out / "adapter_config.json").is_file()
    forced = stillroom(*merged, "--force", cwd=project)
    assert forced.returncode == 0, forced.stderr
    assert json.loads((out / MARKER).read_text())["format"] == "merged"
    assert not (out / "adapter_config.json").exists()
    assert [p.name for p in out.parent.iterdir()] == ["student"]  # no partial or old copy left


def no_converter_named() -> dict[str, str]:
    """This environment without LLAMA_CPP_DIR, and a PATH of system folders only."""
    env = {k: v for k, v in os.environ.items() if k != "LLAMA_CPP_DIR"}
    return {**env, "PATH": os.defpath}


def fake_converter(folder: Path, marker: Path) -> Path:
    """A convert_hf_to_gguf.py that leaves ``marker`` behind and writes a (fake) GGUF file."""
    folder.mkdir(parents=True)
    script = folder / "convert_hf_to_gguf.py"
    script.write_text(
        "import sys, pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('ran')\n"
        "out = sys.argv[sys.argv.index('--outfile') + 1]\n"
        "pathlib.Path(out).write_bytes(b'GGUF')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder


def test_gguf_export_never_runs_a_converter_lying_in_the_working_folder(project):
    """A GGUF export never runs ./llama.cpp/convert_hf_to_gguf.py just because it is there:
    only a converter named by --llama-cpp, LLAMA_CPP_DIR or on PATH."""
    ran = project / "planted-ran"
    fake_converter(project / "llama.cpp", ran)
    result = stillroom(
        "export", RUN, "--format", "gguf", "--out", "gguf", env=no_converter_named(), cwd=project
    )
    assert refused_cleanly(result, "no GGUF converter found", "--llama-cpp llama.cpp")
    assert not ran.exists()
    assert not (project / "gguf").exists()


def test_gguf_export_runs_the_converter_you_named_and_says_which(project, tmp_path):
    """A GGUF export runs the converter named by --llama-cpp and prints which one runs."""
    ran = tmp_path / "named-ran"
    named = fake_converter(tmp_path / "my-llama.cpp", ran)
    result = stillroom(
        "export", RUN, "--format", "gguf", "--out", "gguf", "--llama-cpp", str(named), cwd=project
    )
    assert result.returncode == 0, result.stderr
    assert f"converter: {named / 'convert_hf_to_gguf.py'} (from --llama-cpp)" in result.stdout
    assert ran.exists() and (project / "gguf" / "Modelfile").is_file()


def test_an_export_killed_outright_leaves_nothing_for_the_next_one_to_trip_on(project, tmp_path):
    """An export killed outright leaves its half-built hidden folder; the next export to the
    same folder removes it and says so. A running export's folder, and a look-alike without
    Stillroom's note, are left alone."""
    started = tmp_path / "converter-started"
    hanging = fake_converter(tmp_path / "llama.cpp", started)
    script = hanging / "convert_hf_to_gguf.py"
    script.write_text(script.read_text() + "import time\ntime.sleep(600)\n")
    out = project / "exports" / "student"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = ["export", RUN, "--format", "gguf", "--out", str(out), "--llama-cpp", str(hanging)]
    child = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", *command], cwd=project, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while not started.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert started.exists(), "the export never reached its converter"
    os.killpg(child.pid, signal.SIGKILL)  # the export and its converter, as a closed terminal can
    child.wait()
    (left,) = out.parent.glob(".student.*.partial")
    assert (left / "merged-hf").is_dir() and not out.exists()
    theirs = out.parent / ".student.mine.partial"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("mine")
    running = new_partial(out)  # noted as this test's own, live process

    result = stillroom("export", RUN, "--format", "adapter", "--out", str(out), cwd=project)
    assert result.returncode == 0, result.stderr
    assert (
        f"removed {left} (" in result.stdout
        and "left by an export that was stopped" in result.stdout
    )
    assert not left.exists() and not left.with_name(left.name + ".owner.json").exists()
    assert (out / "adapter_config.json").is_file()
    assert (theirs / "keep.txt").read_text() == "mine" and running.is_dir()
