"""One OpenAI-compatible client for every provider, and what its errors mean.

The key is read from the environment variable the plan names at the moment the
client is built and lives only in that client's memory: it is never returned,
logged or put in an error message (:func:`redact` scrubs it from server text).
The client's own retries are off; :func:`chat_with_retries` retries instead, so
it can honour ``Retry-After``, add jitter and pause every request after a 429.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import UserError
from engine.i18n import _
from engine.plan import TeacherPlan

if TYPE_CHECKING:
    from openai import AsyncOpenAI

NO_KEY = "EMPTY"  # what keyless local servers (vLLM, Ollama, llama.cpp) accept


class TeacherError(UserError):
    """A failure retrying cannot fix; the run stops and ``hint`` says what to do.

    ``kind``: ``key`` | ``auth`` | ``balance`` | ``request`` | ``model`` | ``unreachable`` |
    ``not_an_api`` (the URL answers with a web page).
    """

    def __init__(self, kind: str, message: str, hint: str = ""):
        super().__init__(message, hint)
        self.kind = kind


class Retryable(Exception):
    """A failure worth another try (429, 5xx, timeout, lost connection, garbled body)."""

    def __init__(
        self, reason: str, retry_after_s: float | None = None, *, rate_limited: bool = False
    ):
        super().__init__(reason)
        self.retry_after_s = retry_after_s
        self.rate_limited = rate_limited


class PromptRejected(Exception):
    """This prompt cannot be answered (e.g. longer than the context); the others can."""


@dataclass(frozen=True)
class Reply:
    """One answer as the endpoint returned it, before reasoning is split out."""

    content: str
    reasoning_content: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool
    model: str
    latency_s: float


def api_key(teacher: TeacherPlan) -> str:
    """The key from the environment, or a clear error naming the variable to export."""
    if not teacher.api_key_env:
        return NO_KEY
    key = os.environ.get(teacher.api_key_env, "").strip()
    if not key:
        raise TeacherError(
            "key",
            _("the environment variable {api_key_env} is not set").format(
                api_key_env=teacher.api_key_env
            ),
            hint=(
                _(
                    "export {api_key_env}=<your {provider} API key> and run again (Stillroom reads "
                    "the key from the environment and never stores it); a local server without a "
                    "key takes --api-key-env ''."
                ).format(api_key_env=teacher.api_key_env, provider=teacher.provider)
            ),
        )
    return key


def make_client(teacher: TeacherPlan, key: str) -> AsyncOpenAI:
    """An async client with its own retries off; ``timeout_s`` bounds each wait for bytes.

    Every answer passes :func:`_refuse_web_pages` first, so a URL that serves a
    web page fails at once with :func:`not_an_api`, before anything is parsed.
    """
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient, Timeout

    return AsyncOpenAI(
        api_key=key,
        base_url=teacher.base_url,
        max_retries=0,
        timeout=Timeout(teacher.timeout_s, connect=min(teacher.timeout_s, 10.0)),
        # Never pick up OPENAI_ORG_ID / OPENAI_PROJECT_ID meant for another endpoint.
        organization=None,
        project=None,
        http_client=DefaultAsyncHttpxClient(
            event_hooks={"response": [_refuse_web_pages(teacher.base_url)]}
        ),
    )


# A web page sent with these for the chat request says the URL is no API (a website, a web UI
# without /v1). With any other error status the status still means what it says (a firewall's
# 403, a 429); an HTML 404 for GET /models may be a proxy that forwards the chat route alone.
NO_ROUTE_STATUSES = (404, 405)


def _refuse_web_pages(base_url: str) -> Callable[[Any], Any]:
    """A response hook raising :func:`not_an_api` for an answer that is a web page.

    A captive portal, a login page or a web UI at the wrong path answers 200 with
    HTML; parsed as the API, that was a traceback or minutes of retries. A website
    without the API's routes answers 404 or 405 with its own HTML error page.
    """

    async def check(response: Any) -> None:
        status = response.status_code
        no_route = status in NO_ROUTE_STATUSES and response.request.method == "POST"
        answered = 200 <= status < 300 or no_route
        if answered and await _is_web_page(response):
            raise not_an_api(base_url, response.request.url.path)

    return check


async def _is_web_page(response: Any) -> bool:
    kind = response.headers.get("content-type", "").lower()
    if "html" in kind:
        return True
    if "json" in kind or "event-stream" in kind:
        return False
    await response.aread()  # no usable type: look at the body (kept for the caller)
    return response.content[:512].lstrip().lower().startswith((b"<!doctype html", b"<html"))


def not_an_api(base_url: str, path: str) -> TeacherError:
    """The URL serves a web page, not the OpenAI API: say so and suggest the ``/v1`` path."""
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        hint = _(
            "The URL reaches a web UI, a proxy's login page or a captive portal instead of "
            "the API: check the host and port; `curl {base}/models` should answer JSON."
        )
    else:
        hint = _(
            "OpenAI-compatible servers answer under /v1: try --base-url {base}/v1 "
            "(else the URL reaches a web UI, a login page or a captive portal); "
            "`curl {base}/models` should answer JSON."
        )
    return TeacherError(
        "not_an_api",
        _(
            "{base_url} is not an OpenAI-compatible endpoint: it answered {path} with a web page "
            "(HTML), not the API"
        ).format(base_url=base_url, path=path),
        hint=hint.format(base=base),
    )


def redact(text: str, key: str) -> str:
    """``text`` with the key (and any long run of it) replaced by ``***``."""
    if key and key != NO_KEY and len(key) >= 6:
        text = text.replace(key, "***")
    return text


async def list_models(client: AsyncOpenAI, key: str) -> list[str]:
    """The model ids the endpoint serves today (``GET /models``), sorted."""
    try:
        page = await client.models.list()
        return sorted(model.id for model in page.data)
    except Exception as error:  # noqa: BLE001 - mapped to our own error kinds
        raise classify(error, key) from None


async def fetch_models(client: AsyncOpenAI, teacher: TeacherPlan, key: str) -> list[str]:
    """:func:`list_models` with two retries; an endpoint that never answers is an error,
    one without a ``/models`` route gives ``[]``."""
    for attempt in range(3):
        try:
            return await list_models(client, key)
        except Retryable as failure:
            if attempt == 2:
                raise TeacherError(
                    "unreachable",
                    _("cannot reach {base_url} ({failure})").format(
                        base_url=teacher.base_url, failure=failure
                    ),
                    hint=_(
                        "Is the server running and the URL right? Local servers: vLLM :8000/v1, "
                        "Ollama :11434/v1, LM Studio :1234/v1, llama.cpp :8080/v1."
                    ),
                ) from None
            await asyncio.sleep(teacher.retry_base_s * (attempt + 1))
        except TeacherError as error:
            if error.kind != "model":
                raise
            break
    return []


def classify(error: BaseException, key: str) -> BaseException:
    """Map an ``openai`` exception onto :class:`TeacherError`, :class:`Retryable` or
    :class:`PromptRejected`; anything unknown is returned unchanged (a bug)."""
    import openai

    if isinstance(error, TeacherError):
        return error
    if isinstance(error, openai.APITimeoutError):
        return Retryable("timed out")
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error
        return Retryable(f"connection failed ({type(cause).__name__})")
    if isinstance(error, openai.APIResponseValidationError | ValueError):
        return Retryable("the endpoint sent a response that is not valid JSON")
    if not isinstance(error, openai.APIStatusError):
        return error
    status = error.status_code
    detail = redact(_server_message(error), key)
    code = _error_code(error)
    if status == 429 and code != "insufficient_quota":
        return Retryable("rate limited (429)", _retry_after(error), rate_limited=True)
    if status in (408, 409) or status >= 500:
        return Retryable(f"server error {status}", _retry_after(error))
    if status == 401:
        return TeacherError(
            "auth",
            _("the endpoint refused the API key (401): {detail}").format(detail=detail),
            hint=_(
                "Check the key in the variable named by api_key_env (--api-key-env), or create a "
                "new key in the provider's console."
            ),
        )
    if status == 402 or code == "insufficient_quota":
        return TeacherError(
            "balance",
            _("the account has no balance left ({status}): {detail}").format(
                status=status, detail=detail
            ),
            hint=_(
                "Top up the account, then run the same command again: finished answers are kept "
                "and not paid for twice."
            ),
        )
    if status == 403:
        return TeacherError(
            "auth",
            _("the key may not use this model or endpoint (403): {detail}").format(detail=detail),
            hint=_("Check the model's access on the provider's console, or pick another --model."),
        )
    if status == 404:
        return TeacherError(
            "model",
            _("the endpoint has no model or route for this request (404): {detail}").format(
                detail=detail
            ),
            hint=_(
                "Check --model (`stillroom generate --list-models` shows the ids) and --base-url "
                "(OpenAI-compatible servers usually end in /v1)."
            ),
        )
    if status in (400, 413, 422) and _too_long(detail):
        return PromptRejected(f"the prompt does not fit the model's context: {detail}")
    return TeacherError(
        "request",
        _("the endpoint rejected the request ({status}): {detail}").format(
            status=status, detail=detail
        ),
        hint=_(
            "Check the sampling settings (temperature, top_p, max_tokens) and extra_body against "
            "what this model accepts."
        ),
    )


def _server_message(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(getattr(error, "message", "") or error)


def _error_code(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("code") or inner.get("type") or "")
    return ""


def _too_long(detail: str) -> bool:
    lowered = detail.lower()
    return any(
        s in lowered for s in ("context length", "context_length", "maximum context", "too long")
    )


def _retry_after(error: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (a number of seconds)."""
    headers = error.response.headers
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers[name]) / scale)
        except (KeyError, TypeError, ValueError):
            continue
    return None


# --- one request ----------------------------------------------------------------


def _request_body(teacher: TeacherPlan, messages: list[dict[str, str]], **overrides: Any) -> dict:
    limit_name = "max_completion_tokens" if teacher.provider == "openai" else "max_tokens"
    body: dict[str, Any] = {
        "model": teacher.model,
        "messages": messages,
        "temperature": teacher.temperature,
        "top_p": teacher.top_p,
        limit_name: teacher.max_tokens,
        **overrides,
        **teacher.extra_body,
    }
    if teacher.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _reasoning_of(message: dict[str, Any]) -> str:
    """DeepSeek names it ``reasoning_content``; vLLM and OpenRouter ``reasoning``."""
    value = message.get("reasoning_content") or message.get("reasoning")
    return value if isinstance(value, str) else ""


def estimate_tokens(text: str) -> int:
    """About four characters a token for Latin text, one and a half for CJK."""
    wide = sum(1 for ch in text if ord(ch) > 0x2E7F)
    return max(1, round((len(text) - wide) / 4 + wide / 1.5)) if text else 0


async def chat(
    client: AsyncOpenAI,
    teacher: TeacherPlan,
    messages: list[dict[str, str]],
    key: str,
    **overrides: Any,
) -> Reply:
    """One attempt at one answer, streamed or not; errors come out classified.

    It posts plain JSON through the client's low-level ``post`` and reads plain
    dicts back: the typed ``chat.completions.create`` spends about 3 ms of CPU a
    request validating its arguments, more than all the rest of a request.
    """
    from openai import AsyncStream

    started = time.monotonic()
    content: list[str] = []
    reasoning: list[str] = []
    finish_reason = None
    usage: dict[str, Any] | None = None
    model = teacher.model
    try:
        body = _request_body(teacher, messages, **overrides)
        if teacher.stream:
            stream = await client.post(
                "/chat/completions",
                body=body,
                cast_to=object,
                stream=True,
                stream_cls=AsyncStream[object],
            )
            async for chunk in stream:
                model = chunk.get("model") or model
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    content.append(delta.get("content") or "")
                    reasoning.append(_reasoning_of(delta))
                    finish_reason = choice.get("finish_reason") or finish_reason
        else:
            response = await client.post("/chat/completions", body=body, cast_to=object)
            choice = response["choices"][0]
            model = response.get("model") or model
            usage = response.get("usage")
            content.append(choice["message"].get("content") or "")
            reasoning.append(_reasoning_of(choice["message"]))
            finish_reason = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise Retryable("the endpoint sent a response without an answer in it") from None
    except Exception as error:  # noqa: BLE001 - classified below
        mapped = classify(error, key)
        raise mapped from (None if mapped is error else error)
    if teacher.stream and finish_reason is None:
        raise Retryable("the stream ended before the answer did")
    text, thought = "".join(content), "".join(reasoning) or None
    if usage:
        prompt_tokens = usage.get("prompt_tokens") or 0
        completion_tokens = usage.get("completion_tokens") or 0
    else:
        prompt_tokens = sum(estimate_tokens(m["content"]) for m in messages)
        completion_tokens = estimate_tokens(text) + estimate_tokens(thought or "")
    return Reply(
        content=text,
        reasoning_content=thought,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        usage_estimated=not usage,
        model=model,
        latency_s=time.monotonic() - started,
    )


class Gate:
    """Shared by every request of a job: after a 429, nobody sends until it lifts."""

    def __init__(self) -> None:
        self.open_at = 0.0

    def close_for(self, seconds: float) -> None:
        self.open_at = max(self.open_at, time.monotonic() + seconds)

    async def wait(self) -> None:
        while (delay := self.open_at - time.monotonic()) > 0:
            await asyncio.sleep(delay)


def backoff_s(teacher: TeacherPlan, attempt: int, retry_after_s: float | None) -> float:
    """Exponential backoff with jitter; ``Retry-After`` wins when the server sends it."""
    if retry_after_s is not None:
        return retry_after_s * random.uniform(1.0, 1.2)
    ceiling = min(teacher.retry_max_s, teacher.retry_base_s * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)


async def chat_with_retries(
    client: AsyncOpenAI,
    teacher: TeacherPlan,
    messages: list[dict[str, str]],
    key: str,
    gate: Gate,
    on_retry: Callable[[str], None] = lambda reason: None,
    **overrides: Any,
) -> Reply:
    """:func:`chat`, retried up to ``max_retries`` times on :class:`Retryable` failures."""
    attempt = 0
    while True:
        await gate.wait()
        try:
            return await chat(client, teacher, messages, key, **overrides)
        except Retryable as failure:
            if attempt >= teacher.max_retries:
                raise
            delay = backoff_s(teacher, attempt, failure.retry_after_s)
            if failure.rate_limited:
                gate.close_for(delay)
            on_retry(str(failure))
            attempt += 1
            await asyncio.sleep(delay)
