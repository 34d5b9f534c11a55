"""Provider presets and the price table, kept as data.

Every provider is the same OpenAI-compatible client with a different base URL,
key variable and price list. Model ids change (DeepSeek retired ``deepseek-chat``
and ``deepseek-reasoner`` for ``deepseek-v4-flash``/``deepseek-v4-pro`` in July
2026), so the lists below are suggestions only: ``stillroom generate
--list-models`` asks the endpoint what it serves today. Stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    # vLLM's default port; Ollama serves http://localhost:11434/v1, LM Studio
    # http://localhost:1234/v1, llama.cpp's server http://localhost:8080/v1.
    "local": Preset(name="local", base_url="http://localhost:8000/v1", api_key_env="", model=""),
    "custom": Preset(name="custom", base_url="", api_key_env="", model=""),
}

FREE = Price(0.0, 0.0)


def preset(provider: str) -> Preset:
    return PRESETS[provider]


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
