"""Where mainland-China users get teachers and students: the providers they use as presets,
the student from ModelScope (``student.source``), all checked without leaving this machine."""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap

import pytest

from engine import events as ev
from engine.errors import UserError
from engine.hub import MODELSCOPE_IDS, from_modelscope, locate_model, student_on_disk
from engine.plan import Plan, TeacherPlan
from engine.teacher.providers import PRESETS, price_for, provider_for
from tests.engine.training import events_of, run_dir_from, stillroom, write_facts, write_plan

CN_PRESETS = {
    "qwen": ("https://dashscope.aliyuncs.com/compatible-mode/v1", "DASHSCOPE_API_KEY"),
    "moonshot": ("https://api.moonshot.cn/v1", "MOONSHOT_API_KEY"),
    "zhipu": ("https://open.bigmodel.cn/api/paas/v4", "ZHIPUAI_API_KEY"),
    "siliconflow": ("https://api.siliconflow.cn/v1", "SILICONFLOW_API_KEY"),
}


@pytest.mark.parametrize("provider", list(CN_PRESETS))
def test_a_plan_naming_the_provider_gets_its_endpoint_key_variable_and_a_priced_model(provider):
    url, variable = CN_PRESETS[provider]
    teacher = TeacherPlan.model_validate({"provider": provider})
    assert (teacher.base_url, teacher.api_key_env) == (url, variable)
    assert teacher.model in PRESETS[provider].models
    assert price_for(provider, teacher.model) is not None
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", PRESETS[provider].prices_as_of)
    assert provider_for(url) == provider  # a plan giving only the URL is this provider's


def test_generate_dry_run_prices_a_cn_provider_from_its_own_table(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("你好\n什么是蒸馏？\n")
    result = stillroom("generate", "--provider", "qwen", "--prompts", str(prompts),
                       "--dry-run", "--json", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    forecast = json.loads(result.stdout)
    assert forecast["base_url"] == CN_PRESETS["qwen"][0]
    assert forecast["model"] == "qwen-plus"
    assert forecast["price_per_mtok"] is not None
    assert forecast["prices_as_of"] == PRESETS["qwen"].prices_as_of


@pytest.fixture
def no_modelscope(monkeypatch):
    """The modelscope package made unimportable, whether or not it is installed."""
    monkeypatch.setitem(sys.modules, "modelscope", None)


@pytest.fixture
def fake_modelscope(tmp_path, monkeypatch, tiny_model_dir):
    """A ``modelscope`` package whose snapshot_download records the id asked for and hands
    back a local model folder: nothing here can reach a network."""
    package = tmp_path / "fake_site" / "modelscope"
    package.mkdir(parents=True)
    asked = tmp_path / "asked.txt"
    package.joinpath("__init__.py").write_text(
        textwrap.dedent(f"""
            def snapshot_download(model_id, **kwargs):
                with open({str(asked)!r}, "a") as handle:
                    handle.write(model_id + "\\n")
                return {str(tiny_model_dir)!r}
        """)
    )
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.delitem(sys.modules, "modelscope", raising=False)
    monkeypatch.delenv("UNSLOTH_USE_MODELSCOPE", raising=False)
    return asked


def test_without_the_modelscope_package_the_error_gives_the_pip_command(no_modelscope):
    with pytest.raises(UserError) as caught:
        locate_model("unsloth/Qwen2.5-1.5B-Instruct", source="modelscope")
    assert "modelscope" in caught.value.message
    assert "pip install modelscope" in caught.value.hint


def test_a_modelscope_student_is_fetched_there_under_its_modelscope_id(
    fake_modelscope, tiny_model_dir
):
    plan = Plan.model_validate(
        {"student": {"model": "unsloth/Qwen2.5-1.5B-Instruct", "source": "modelscope"}}
    )
    assert locate_model(plan.student.model, source="modelscope").detail.startswith(
        "on ModelScope as Qwen/Qwen2.5-1.5B-Instruct"
    )
    on_disk = student_on_disk(plan)
    assert on_disk.student.model == str(tiny_model_dir)
    assert fake_modelscope.read_text().split() == ["Qwen/Qwen2.5-1.5B-Instruct"]
    assert os.environ["UNSLOTH_USE_MODELSCOPE"] == "1"  # Unsloth, imported later, goes there


def test_a_huggingface_student_never_touches_modelscope(fake_modelscope):
    plan = Plan()
    assert plan.student.source == "huggingface"
    assert student_on_disk(plan) is plan
    assert not fake_modelscope.exists()


def test_a_local_folder_is_used_as_it_is_whatever_the_source(no_modelscope, tiny_model_dir):
    assert from_modelscope(str(tiny_model_dir)) == str(tiny_model_dir)
    assert locate_model(str(tiny_model_dir), source="modelscope").kind == "folder"


def test_ids_the_hubs_spell_differently_are_translated_and_others_kept():
    assert MODELSCOPE_IDS["unsloth/Qwen2.5-1.5B-Instruct"] == "Qwen/Qwen2.5-1.5B-Instruct"
    from engine.hub import modelscope_id

    assert modelscope_id("Qwen/Qwen3-1.7B") == "Qwen/Qwen3-1.7B"


def test_inspect_model_source_modelscope_measures_tokens_with_the_modelscope_tokenizer(
    fake_modelscope, tmp_path
):
    """`inspect --model ID --model-source modelscope` fetches the tokenizer from ModelScope
    (under its ModelScope id), never from Hugging Face."""
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"instruction": "Name a colour.", "output": "Blue."}) + "\n")
    env = {**os.environ, "PYTHONPATH": str(fake_modelscope.parent / "fake_site"),
           "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-cache")}  # fmt: skip
    result = stillroom("inspect", str(data), "--json", "--model", "unsloth/Qwen2.5-1.5B-Instruct",
                       "--model-source", "modelscope", cwd=tmp_path, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tokens"]["max"] > 0
    assert fake_modelscope.read_text().split() == ["Qwen/Qwen2.5-1.5B-Instruct"]


def test_doctor_names_the_missing_modelscope_package(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[student]\nmodel = "unsloth/Qwen2.5-1.5B-Instruct"\nsource = "modelscope"\n')
    block = tmp_path / "block"
    block.mkdir()
    # A modelscope that cannot be imported, whatever this machine has installed.
    (block / "modelscope.py").write_text("raise ImportError('blocked for the test')\n")
    env = {**os.environ, "PYTHONPATH": str(block)}
    result = stillroom("doctor", str(plan), "--json", cwd=tmp_path, env=env)
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    student = checks["student model"]
    assert student["status"] == "fail"
    assert "pip install modelscope" in student["hint"]


def test_the_plan_refuses_an_unknown_source():
    from engine.plan import PlanError, plan_from_dict

    with pytest.raises(PlanError, match="student.source"):
        plan_from_dict({"student": {"source": "gitee"}})


def test_a_plan_with_a_modelscope_student_trains_and_chats_without_hugging_face(
    fake_modelscope, tmp_path
):
    """The whole path in real processes: the trainer, its dataset child and chat all load the
    ModelScope copy; Hugging Face is off (HF_HUB_OFFLINE) and the model is in no HF cache."""
    plan = write_plan(tmp_path, "unsloth/Qwen2.5-1.5B-Instruct", write_facts(tmp_path), max_steps=3)
    plan.write_text(plan.read_text().replace("[student]\n", '[student]\nsource = "modelscope"\n'))
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "fake_site"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "empty-hf-cache"),
    }
    trained = stillroom("train", str(plan), cwd=tmp_path, env=env)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    run_dir = run_dir_from(trained.stdout)
    said = [e.line for e in events_of(run_dir, ev.Log)]
    assert any("on ModelScope as Qwen/Qwen2.5-1.5B-Instruct" in line for line in said)
    answer = stillroom("chat", str(run_dir), "--prompt", "hello", "--max-new-tokens", "4",
                       cwd=tmp_path, env=env)  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert set(fake_modelscope.read_text().split()) == {"Qwen/Qwen2.5-1.5B-Instruct"}
