"""Export the trained facts run: adapter with card, merged (plain transformers, same answers),
GGUF without a converter failing cleanly, and the Ollama Modelfile from the chat template."""

from __future__ import annotations

import json

from engine.export import ollama_modelfile
from tests.engine.training import FACTS, generate, stillroom


def test_export_adapter_has_tokenizer_and_model_card(facts_run, tmp_path):
    out = tmp_path / "adapter-out"
    result = stillroom("export", str(facts_run), "--format", "adapter", "--out", str(out))
    assert result.returncode == 0, result.stderr
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md"):
        assert (out / name).is_file()
    card = (out / "README.md").read_text()
    assert "library_name: peft" in card and "150 steps" in card and "6 rows held out" in card
    # As readable as the files transformers wrote (a temp file's 0600 would lock out others).
    mode = (out / "tokenizer.json").stat().st_mode & 0o777
    assert (out / "README.md").stat().st_mode & 0o777 == mode


def test_merged_export_loads_with_plain_transformers_and_answers_the_same(
    facts_run, tiny_model_dir, tmp_path
):
    out = tmp_path / "merged"
    result = stillroom("export", str(facts_run), "--format", "merged", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "parity: same greedy answers" in result.stdout
    assert not (out / "adapter_config.json").exists() and (out / "model.safetensors").is_file()
    parity = json.loads((out / "parity.json").read_text())
    assert parity["differing"] == 0 and len(parity["items"]) == 3
    question = FACTS[5][0]
    merged = generate(out, question)  # AutoModelForCausalLM only: no PEFT involved
    assert merged == generate(tiny_model_dir, question, facts_run / "adapter")
    assert merged.startswith(FACTS[5][1])


def test_gguf_without_a_converter_fails_cleanly(facts_run, tmp_path, monkeypatch):
    out = tmp_path / "gguf"
    result = stillroom("export", str(facts_run), "--format", "gguf", "--out", str(out))
    assert result.returncode == 2
    assert "no GGUF converter found" in result.stderr and "LLAMA_CPP_DIR" in result.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if "gguf" in p.name]


def test_ollama_modelfile_comes_from_the_chat_template(tiny_tokenizer):
    modelfile = ollama_modelfile(tiny_tokenizer, "student-f16.gguf")
    assert modelfile.splitlines()[0] == "FROM ./student-f16.gguf"
    assert (
        'TEMPLATE """{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
        "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n"
        '{{ .Response }}<|im_end|>\n"""'
    ) in modelfile
    assert (
        'SYSTEM """You are Qwen, created by Alibaba Cloud. You are a helpful assistant."""'
        in modelfile
    )
    assert modelfile.rstrip().endswith('PARAMETER stop "<|im_end|>"')


def test_push_to_hub_without_a_token_is_a_clear_error(facts_run, tmp_path, monkeypatch):
    result = stillroom(
        "export",
        str(facts_run),
        "--format",
        "adapter",
        "--out",
        str(tmp_path / "a"),
        "--push-to-hub",
        "me/student",
    )
    assert result.returncode == 2 and "HF_TOKEN" in result.stderr
    assert not (tmp_path / "a").exists()
