"""The key detector: real keys' shapes are caught, model ids, URLs and paths are not."""

from __future__ import annotations

import pytest

from engine.plan import PlanError, plan_from_dict
from engine.teacher.keys import key_in, key_in_setting, masked

# Shapes of real keys (made up, right lengths and alphabets).
KEYS = [
    "sk-" + "0123456789abcdef" * 2,  # DeepSeek, OpenAI legacy
    "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2,
    "sk-ant-api03-" + "Zx9_Cv8-Bn7mAs6dFg5hJk4lQw3eRt2yUi1o" * 2,
    "sk_live_" + "51Hq8TgZk2Lm9Nx4Pw7Rb3Vc",
    "gsk_" + "Vx7Qm2Lk9Pz4Rt8Wn3Jb6Hc1Yd5Fg0Sa" * 2,
    "xai-" + "Qw3Er4Ty5Ui6Op7As8Df9Gh0Jk1Lz2Xc3" * 2,
    "hf_" + "QpVnXrTbLmWsKdJfGhZcYaEuOiPwRt",
    "ghp_" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2",
    "github_pat_" + "11ABCDEFG0" + "_" + "x1Y2z3" * 10,
    "glpat-" + "Xy7Zq9Wv3Ut5Sr1Pq8No",
    "AIza" + "SyD4x9Qm2Lk7Pz4Rt8Wn3Jb6Hc1Yd5Fg0S",
    "AKIAIOSFODNN7EXAMPLE",
    "3f2a9c8e7d6b5a4f3e2d1c0b9a8f7e6d",  # Azure-style 32 hex
    "Sv70t61qN485dY9hncxKII2tqC3HRkkf",  # 32 random letters and digits
]

NOT_KEYS = [
    "deepseek-v4-flash",
    "Qwen/Qwen2.5-72B-Instruct",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
    "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "accounts/fireworks/models/llama-v3p1-405b-instruct",
    "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
    "ft:gpt-4o-mini-2024-07-18:my-org:custom-suffix:9abc123",
    "hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M",
    "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8",
    "qwen2.5-coder:32b-instruct-q4_K_M",
    "DEEPSEEK_API_KEY",
    "HF_TOKEN",
    "hf_token",
    "data/hf_exported_prompts_2024.jsonl",
    "hf_internationalization_dataset",
    "sk-MyCompanyInternalModel",
    "You are a helpful assistant. Answer in 3 sentences.",
]


@pytest.mark.parametrize("key", KEYS)
def test_key_shapes_are_caught(key):
    assert key_in(key) == key
    assert key_in(f"use {key} here") == key


@pytest.mark.parametrize("text", NOT_KEYS)
def test_model_ids_names_and_prose_are_not_keys(text):
    assert key_in(text) is None


@pytest.mark.parametrize(
    "url",
    [
        "https://api.deepseek.com",
        "http://localhost:11434/v1",
        "https://gateway.ai.cloudflare.com/v1/3f2a9c8e7d6b5a4f3e2d1c0b9a8f7e6d/gw/openai",
        "https://res.openai.azure.com/openai/deployments/gpt4o?api-version=2024-10-21",
    ],
)
def test_urls_with_account_ids_are_not_keys(url):
    assert key_in_setting("base_url", url) is None


def test_keys_in_a_url_password_query_or_path_prefix_are_caught():
    secret = "Sv70t61qN485dY9hncxKII2tqC3HRkkf"
    assert key_in_setting("base_url", f"https://user:{secret}@host/v1") == secret
    assert key_in_setting("base_url", f"https://host/v1?key={secret}") == secret
    assert key_in_setting("base_url", f"https://host/{KEYS[4]}/v1") == KEYS[4]


def test_a_cache_path_is_not_a_key_but_a_prefixed_key_in_a_path_is():
    path = "/root/.cache/hub/datasets--x/snapshots/3f2a9c8e7d6b5a4f3e2d1c0b9a8f7e6d1234/a.jsonl"
    assert key_in_setting("prompts", path) is None
    assert key_in_setting("output", f"/tmp/{KEYS[4]}.jsonl") == KEYS[4]


def test_a_half_typed_key_is_caught_in_a_name_field_but_similar_names_are_not():
    assert key_in_setting("model", "gsk_V") == "gsk_V"
    assert key_in_setting("api_key_env", "sk_live_5") == "sk_live_5"
    assert key_in_setting("api_key_env", "sk-abc") == "sk-abc"
    for name in ("pplx-7b-online", "hf_token", "ASIA_API_KEY", "deepseek-v4-flash"):
        assert key_in_setting("model", name) is None
        assert key_in_setting("api_key_env", name.replace("-", "_")) is None


def test_extra_body_credentials_are_caught_and_sampling_fields_are_not():
    assert key_in_setting("extra_body", {"headers": {"Authorization": "Bearer abcdefgh"}})
    assert key_in_setting("extra_body", {"x": [KEYS[0]]}) == KEYS[0]
    fine = {"stop_token": "<|im_end|>", "max_tokens": 9, "chat_template_kwargs": {"a": "b"}}
    assert key_in_setting("extra_body", fine) is None


def test_a_plan_with_a_key_names_the_field_and_shows_only_four_characters():
    with pytest.raises(PlanError) as caught:
        plan_from_dict({"teacher": {"model": KEYS[4], "concurrency": KEYS[5]}})
    text = str(caught.value)
    assert "teacher.model: looks like an API key (gsk_… (68 characters))" in text
    assert "teacher.concurrency" in text and masked(KEYS[5]) in text
    assert KEYS[4] not in text and KEYS[5] not in text
