"""The demo teacher, reached through Stillroom's own teacher client as any provider is."""

from __future__ import annotations

import asyncio

import pytest

from engine.demo.folder import demo_plan, knowledge
from engine.demo.teacher import KEY, KEY_ENV, MODEL, UNKNOWN, DemoTeacher
from engine.teacher.client import Gate, api_key, chat_with_retries, fetch_models, make_client
from engine.teacher.generate import price_of


@pytest.mark.parametrize("stream", [True, False])
def test_demo_teacher_answers_from_the_textbook_and_owns_up_to_the_rest(
    tmp_path, monkeypatch, stream
):
    monkeypatch.setenv(KEY_ENV, KEY)
    with DemoTeacher(knowledge()) as server:
        teacher = demo_plan(tmp_path, "random", server.base_url).teacher
        teacher = teacher.model_copy(update={"stream": stream})

        async def ask(question: str) -> tuple[list[str], str]:
            key = api_key(teacher)
            async with make_client(teacher, key) as client:
                models = await fetch_models(client, teacher, key)
                messages = [{"role": "user", "content": question}]
                reply = await chat_with_retries(client, teacher, messages, key, Gate())
                return models, reply.content

        assert asyncio.run(ask("Who founded Marrowick?")) == (
            [MODEL],
            "Marrowick was founded by Orla Penwick.",
        )
        assert asyncio.run(ask("What is the capital of France?"))[1] == UNKNOWN
    assert price_of(teacher).cost(10_000, 10_000) == 0
