"""Provider presets and the price table, kept as data, and how a teacher is resolved.

Every provider is the same OpenAI-compatible client with a different base URL,
key variable and price list. Model ids change (DeepSeek retired ``deepseek-chat``
and ``deepseek-reasoner`` for ``deepseek-v4-flash``/``deepseek-v4-pro`` in July
2026), so the lists below are suggestions only: ``stillroom generate
--list-models`` asks the endpoint what it serves today.

Resolution, one way everywhere (plan loading, so the wizard and ``chat
--compare`` too; ``generate``'s flags; the wizard's provider switch): preset <
plan < flags, field by field (:func:`with_preset`, :func:`layered`,
:func:`endpoint_for`). Stdlib only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Cache-miss input and output prices in USD per million tokens, as published on
# the providers' pricing pages on this date. Plans override them with
# ``price_input_per_mtok`` / ``price_output_per_mtok``.
PRICES_AS_OF = "2026-07-04"


@dataclass(frozen=True)
class Price:
    """USD per million tokens; cache hits are billed lower, so estimates are upper bounds."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok
        ) / 1e6


@dataclass(frozen=True)
class Preset:
    """What a provider name fills in when the plan leaves it out."""

    name: str
    base_url: str
    api_key_env: str  # "" means the endpoint takes no key
    model: str  # "" means: take the only model the endpoint lists
    models: tuple[str, ...] = ()
    prices: dict[str, Price] = field(default_factory=dict)
    source: str = ""
    prices_as_of: str = PRICES_AS_OF  # the day ``prices`` were read off ``source``


CNY_PER_USD = 7.1  # for the providers that publish CNY prices only; plan keys override


def _cny(input_per_mtok: float, output_per_mtok: float) -> Price:
    """A price published in CNY per million tokens, in the table's USD."""
    return Price(round(input_per_mtok / CNY_PER_USD, 4), round(output_per_mtok / CNY_PER_USD, 4))


PRESETS: dict[str, Preset] = {
    "deepseek": Preset(
        name="deepseek",
        base_url="https://api.deepseek.com",
        api_key_env="DEEPSEEK_API_KEY",
        model="deepseek-v4-flash",
        models=("deepseek-v4-flash", "deepseek-v4-pro"),
        prices={
            "deepseek-v4-flash": Price(0.14, 0.28),
            "deepseek-v4-pro": Price(0.435, 0.87),
        },
        source="https://api-docs.deepseek.com/quick_start/pricing",
    ),
    "openai": Preset(
        name="openai",
        base_url="https://api.openai.com/v1",
        api_key_env="OPENAI_API_KEY",
        model="gpt-4.1-mini",
        models=("gpt-5", "gpt-5-mini", "gpt-4.1-mini", "gpt-4o-mini"),
        prices={
            "gpt-5": Price(1.25, 10.0),
            "gpt-5-mini": Price(0.25, 2.0),
            "gpt-4.1-mini": Price(0.40, 1.60),
            "gpt-4o-mini": Price(0.15, 0.60),
        },
        source="https://openai.com/api/pricing",
    ),
    # The mainland-China presets below were checked on 2026-11-30 against documentation
    # search results: base URLs against the providers' own docs (DashScope, BigModel and
    # SiliconFlow pages; Moonshot's .cn host from integrations, its docs show the .ai twin).
    # Model ids and prices come from copies of the providers' price lists (integration
    # catalogues, price trackers), not from the pages in ``source``, which are where to
    # re-check them. They bill in CNY; CNY-only prices are converted at CNY_PER_USD.
    # ``stillroom generate --list-models`` and the plan's price keys settle any doubt.
    "qwen": Preset(
        # Alibaba Cloud Model Studio (DashScope/Bailian), OpenAI-compatible mode, Beijing
        # region (international: https://dashscope-intl.aliyuncs.com/compatible-mode/v1).
        # URL: Model Studio's "OpenAI Chat 接口兼容" page; prices (CNY per million tokens,
        # input up to 128K/32K): qwen-plus 0.8/2, qwen-flash 0.15/1.5, qwen3-max 2.5/10.
        name="qwen",
        base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
        api_key_env="DASHSCOPE_API_KEY",
        model="qwen-plus",
        models=("qwen-plus", "qwen-flash", "qwen3-max"),
        prices={
            "qwen-plus": _cny(0.8, 2.0),
            "qwen-flash": _cny(0.15, 1.5),
            "qwen3-max": _cny(2.5, 10.0),
        },
        source="https://help.aliyun.com/zh/model-studio/models",
        prices_as_of="2026-11-30",
    ),
    "moonshot": Preset(
        # Moonshot (Kimi) open platform; international twin https://api.moonshot.ai/v1.
        # The kimi-k2-0711/0905/turbo previews were retired in 2026; kimi-k2.6 is the
        # general model. Price in USD as listed for kimi-k2.6 (0.95 in, 4.00 out).
        name="moonshot",
        base_url="https://api.moonshot.cn/v1",
        api_key_env="MOONSHOT_API_KEY",
        model="kimi-k2.6",
        models=("kimi-k2.6",),
        prices={"kimi-k2.6": Price(0.95, 4.0)},
        source="https://platform.moonshot.cn/docs/pricing/chat",
        prices_as_of="2026-11-30",
    ),
    "zhipu": Preset(
        # Zhipu BigModel (GLM), OpenAI-compatible at /api/paas/v4 (docs.bigmodel.cn);
        # international twin Z.ai at https://api.z.ai/api/paas/v4. USD prices as Z.ai
        # publishes them: glm-4.6 0.60/2.20, glm-4.5-flash free.
        name="zhipu",
        base_url="https://open.bigmodel.cn/api/paas/v4",
        api_key_env="ZHIPUAI_API_KEY",
        model="glm-4.6",
        models=("glm-4.6", "glm-4.5-flash"),
        prices={"glm-4.6": Price(0.60, 2.20), "glm-4.5-flash": Price(0.0, 0.0)},
        source="https://open.bigmodel.cn/pricing",
        prices_as_of="2026-11-30",
    ),
    "siliconflow": Preset(
        # SiliconFlow (硅基流动), base URL from docs.siliconflow.cn's quick start; model ids
        # are hub-style (owner/name). USD as listed: DeepSeek-V3 0.25/1.00, R1 0.50/2.00.
        name="siliconflow",
        base_url="https://api.siliconflow.cn/v1",
        api_key_env="SILICONFLOW_API_KEY",
        model="deepseek-ai/DeepSeek-V3",
        models=("deepseek-ai/DeepSeek-V3", "deepseek-ai/DeepSeek-R1"),
        prices={
            "deepseek-ai/DeepSeek-V3": Price(0.25, 1.0),
            "deepseek-ai/DeepSeek-R1": Price(0.50, 2.0),
        },
        source="https://siliconflow.cn/pricing",
        prices_as_of="2026-11-30",
    ),
    # vLLM's default port; Ollama serves http://localhost:11434/v1, LM Studio
    # http://localhost:1234/v1, llama.cpp's server http://localhost:8080/v1.
    "local": Preset(name="local", base_url="http://localhost:8000/v1", api_key_env="", model=""),
    "custom": Preset(name="custom", base_url="", api_key_env="", model=""),
}

FREE = Price(0.0, 0.0)
DEFAULT_PROVIDER = "deepseek"
ENDPOINT_KEYS = ("base_url", "api_key_env", "model")  # what a preset fills in
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def provider_for(base_url: str) -> str:
    """The provider a URL names when no provider is given: the preset whose host it is,
    ``local`` for this machine, ``custom`` for anything else (never a paid preset)."""
    host = _host(base_url)
    if host in LOOPBACK_HOSTS:
        return "local"
    named = [p.name for p in PRESETS.values() if p.base_url and _host(p.base_url) == host]
    return named[0] if named else "custom"


def with_preset(written: Mapping[str, Any]) -> dict[str, Any]:
    """Teacher settings as written, completed by their provider's preset.

    Every value written wins over the preset's. Without a provider, a written
    ``base_url`` picks it (:func:`provider_for`), so a plan naming its own
    endpoint is never sent to the default provider; with neither, the default.
    """
    provider = written.get("provider") or (
        provider_for(written["base_url"]) if written.get("base_url") else DEFAULT_PROVIDER
    )
    if provider not in PRESETS:  # the plan's own check names the bad value
        return dict(written)
    chosen = PRESETS[provider]
    filled = {"base_url": chosen.base_url, "api_key_env": chosen.api_key_env, "model": chosen.model}
    return {**filled, **written, "provider": provider}


def endpoint_for(provider: str, current_base_url: str = "") -> dict[str, str]:
    """The endpoint a switch to ``provider`` brings: its preset's URL, key variable and model
    (a preset without a URL, ``custom``, keeps the current one)."""
    chosen = PRESETS[provider]
    return {
        "base_url": chosen.base_url or current_base_url,
        "api_key_env": chosen.api_key_env,
        "model": chosen.model,
    }


def layered(written: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` (command-line flags) over ``written`` (a plan as written), field by field.

    An override that changes the provider replaces the plan's endpoint, which
    belonged to the old provider, by the new preset's; endpoint fields given as
    overrides still win. So: preset < plan < flags, for every field.
    """
    merged = dict(written)
    new = overrides.get("provider")
    if new in PRESETS and new != with_preset(written).get("provider"):
        merged.update(endpoint_for(new), provider=new)
    merged.update(overrides)
    return merged


def price_for(
    provider: str,
    model: str,
    input_per_mtok: float | None = None,
    output_per_mtok: float | None = None,
) -> Price | None:
    """The price to charge: plan overrides first, then the table; ``None`` when unknown."""
    known = FREE if provider == "local" else PRESETS[provider].prices.get(model)
    inp = (
        input_per_mtok if input_per_mtok is not None else (known.input_per_mtok if known else None)
    )
    out = (
        output_per_mtok
        if output_per_mtok is not None
        else (known.output_per_mtok if known else None)
    )
    if inp is None or out is None:
        return None
    return Price(inp, out)
