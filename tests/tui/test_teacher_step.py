"""The Teacher step's sampling knobs and model picker, driven by keys against a loopback server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual import events
from textual.widgets import OptionList

from engine.plan import load_plan
from tests.teacher_server import MODELS, TeacherServer
from tui.screens.teacher import ModelPicker

from .conftest import SIZE
from .scenes import until

pytestmark = pytest.mark.anyio
KEY_VAR = "STILLROOM_TUI_TEST_KEY"
UNREACHABLE = "http://127.0.0.1:9/v1"  # the discard port: nothing listens


async def type_into(pilot, key: str, text: str, *, clear: bool = True) -> str:
    """Type ``text`` in the field of plan ``key`` (replacing it); returns the line beside it."""
    knob = pilot.app.screen.query_one(f"#knob-{key.replace('.', '-')}")
    knob.editor.focus()
    await pilot.press("end", *(["ctrl+u"] if clear else []), *text)
    await pilot.pause()
    return str(knob.query_one(".help").render())


async def test_temperature_and_spending_cap_reach_the_saved_plan_and_bad_values_are_refused(
    make_app,
):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        await type_into(pilot, "teacher.temperature", "0.3")
        await type_into(pilot, "teacher.budget_usd", "2.5")
        await type_into(pilot, "teacher.max_tokens", "512")
        saved = load_plan("stillroom-plan.toml").teacher
        assert (saved.temperature, saved.budget_usd, saved.max_tokens) == (0.3, 2.5, 512)

        assert "valid number" in await type_into(pilot, "teacher.budget_usd", "x", clear=False)
        assert "valid number" in await type_into(pilot, "teacher.temperature", "?", clear=False)
        saved = load_plan("stillroom-plan.toml").teacher
        assert (saved.temperature, saved.budget_usd) == (0.3, 2.5)  # the last valid values
        assert "less than or equal to 2" in await type_into(pilot, "teacher.temperature", "5")
        assert "greater than 0" in await type_into(pilot, "teacher.budget_usd", "-1")
        assert load_plan("stillroom-plan.toml").teacher.temperature <= 2

        assert "empty: no cap" in await type_into(pilot, "teacher.budget_usd", "")
        assert load_plan("stillroom-plan.toml").teacher.budget_usd is None


async def open_models(pilot) -> None:
    """ctrl+l from the Model field, then wait for the endpoint's answer."""
    pilot.app.screen.query_one("#knob-teacher-model Input").focus()
    await pilot.pause()
    await pilot.press("ctrl+l")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_model_picker_lists_the_endpoints_models_and_sets_the_plan(make_app, monkeypatch):
    with TeacherServer() as server:
        monkeypatch.setenv(KEY_VAR, server.api_key)
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("n")
            await pilot.pause()
            app.change("teacher", provider="local", base_url=server.base_url, model="teacher-1",
                       api_key_env=KEY_VAR)  # fmt: skip
            app.screen.show_plan()
            await open_models(pilot)
            assert isinstance(app.screen, ModelPicker)
            options = app.screen.query_one(OptionList)
            listed = [options.get_option_at_index(i).prompt for i in range(options.option_count)]
            assert listed == sorted(MODELS)
            assert listed[options.highlighted] == "teacher-1"  # the current model

            await pilot.press("down", "enter")
            await pilot.pause()
            assert not isinstance(app.screen, ModelPicker)
            assert app.screen.query_one("#knob-teacher-model Input").value == listed[1]
    assert load_plan("stillroom-plan.toml").teacher.model == listed[1]


async def test_models_key_belongs_to_the_model_field(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        app.screen.query_one("#knob-teacher-output Input").focus()
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert str(app.screen.query_one("#test-result").render()) == ""


@pytest.mark.parametrize(
    "case, says",
    [
        ("unset", "DEEPSEEK_API_KEY is not set"),
        ("wrong key", "refused the API key (401)"),
        ("unreachable", "Is the server running"),
    ],
)
async def test_models_failure_says_what_to_do_and_offers_the_preset(
    make_app, monkeypatch, case, says
):
    with TeacherServer() as server:
        monkeypatch.setenv(KEY_VAR, "sk-wrong-0000000000")
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("n")
            await pilot.pause()
            if case == "wrong key":
                app.change("teacher", base_url=server.base_url, api_key_env=KEY_VAR)
            elif case == "unreachable":
                app.change("teacher", base_url=UNREACHABLE, api_key_env="",
                           retry_base_s=0.01)  # fmt: skip
            await open_models(pilot)
            assert isinstance(app.screen, ModelPicker)  # offline: the deepseek preset's models
            assert app.screen.query_one(OptionList).option_count == 2
            await pilot.press("escape")
            await pilot.pause()
            assert says in str(app.screen.query_one("#test-result").render())
            assert app.plan.teacher.model == "deepseek-v4-flash"


async def test_a_draft_naming_its_own_endpoint_is_the_one_the_teacher_step_uses(
    make_app, monkeypatch
):
    """You should see the provider a draft's own URL means (never the DeepSeek default), a test
    call that reaches that URL, and a switch to custom that keeps the URL but no preset key."""
    with TeacherServer() as server:
        monkeypatch.setenv(KEY_VAR, server.api_key)
        Path("stillroom-plan.toml").write_text(
            f'# wizard-step: teacher\n[teacher]\nbase_url = "{server.base_url}"\n'
            f'model = "teacher-reasoner"\napi_key_env = "{KEY_VAR}"\n'
        )
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert app.screen.query_one("#knob-teacher-provider Select").value == "local"
            await pilot.press("ctrl+t")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "serves teacher-reasoner" in str(app.screen.query_one("#test-result").render())
            assert server.hits and {key for _, _, key in server.hits} == {server.api_key}

            app.screen.query_one("#knob-teacher-provider Select").value = "custom"
            await pilot.pause()
            teacher = load_plan("stillroom-plan.toml").teacher
            assert (teacher.provider, teacher.base_url) == ("custom", server.base_url)
            assert teacher.api_key_env == ""


async def test_a_test_call_at_a_web_page_says_it_is_not_an_api(make_app):
    """You should see, at once, that a URL answering with a web page is no OpenAI-compatible
    endpoint, and the /v1 path to try."""
    with TeacherServer(portal=True) as portal:
        base = portal.base_url.removesuffix("/v1")
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("n")
            await pilot.pause()
            app.change("teacher", provider="custom", base_url=base, api_key_env="")
            await pilot.press("ctrl+t")
            await app.workers.wait_for_complete()
            await pilot.pause()
            said = str(app.screen.query_one("#test-result").render())
            assert "not an OpenAI-compatible endpoint" in said and f"{base}/v1" in said
            assert len(portal.hits) == 1


async def test_a_key_typed_into_a_teacher_field_is_refused_masked_and_never_saved(make_app):
    """You should see a key typed or pasted into the Model or Key variable field refused, shown
    only as its first four characters and its length, and no part of it in the draft plan."""
    key = "gsk_" + "Vx7Qm2Lk9Pz4Rt8Wn3Jb6Hc1Yd5Fg0Sa" * 2
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        said = await type_into(pilot, "teacher.model", key)  # typed, one key press a character
        assert "looks like an API key (gsk_… (68 characters))" in said and key not in said
        field = app.screen.query_one("#knob-teacher-api_key_env")
        field.editor.focus()
        await pilot.press("end", "ctrl+u")
        field.editor.post_message(events.Paste(key))
        await pilot.pause()
        said = str(field.query_one(".help").render())
        assert "looks like an API key (gsk_… (68 characters))" in said and key not in said
        assert key[:5] not in Path("stillroom-plan.toml").read_text()
        assert app.plan.teacher.model == "gsk"  # the public prefix typed so far, no more


async def test_the_provider_list_offers_the_mainland_china_providers_with_their_endpoints(
    make_app,
):
    """You can pick Qwen (DashScope), Moonshot, Zhipu or SiliconFlow on the Teacher step, and
    the plan gets that provider's endpoint and key variable."""
    Path("stillroom-plan.toml").write_text("# wizard-step: teacher\n")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        select = app.screen.query_one("#knob-teacher-provider Select")
        offered = {value for _label, value in select._options}
        assert {"qwen", "moonshot", "zhipu", "siliconflow"} <= offered
        select.value = "qwen"
        await pilot.pause()
        teacher = load_plan("stillroom-plan.toml").teacher
        assert teacher.base_url == "https://dashscope.aliyuncs.com/compatible-mode/v1"
        assert (teacher.api_key_env, teacher.model) == ("DASHSCOPE_API_KEY", "qwen-plus")


@pytest.mark.parametrize(
    "case, says",
    [("wrong key", "refused the API key (401)"), ("unreachable", "Is the server running")],
)
async def test_a_generation_that_cannot_reach_the_teacher_says_so_on_the_step_and_can_retry(
    make_app, monkeypatch, case, says
):
    """You should see the child's error on the step, in words and without a traceback, and
    generate again once it is fixed."""
    Path("prompts.txt").write_text("What is a burr grinder?\nWhat is a boiler?\n")
    with TeacherServer() as server:
        monkeypatch.setenv(KEY_VAR, "sk-wrong-0000000000")
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("n")
            await pilot.pause()
            screen = app.screen
            url, key = (server.base_url, KEY_VAR) if case == "wrong key" else (UNREACHABLE, "")
            app.change("teacher", provider="local", base_url=url, model="teacher-1",
                       api_key_env=key, prompts="prompts.txt", retry_base_s=0.01,
                       retry_max_s=0.02)  # fmt: skip
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.result is not None and not screen.running)
            progress = screen.query_one("#progress")
            said = str(progress.render())
            assert said.startswith("✗") and says in said and progress.has_class("-error")
            assert "Traceback" not in said and screen.child.process.pid != os.getpid()
            assert "Traceback" not in Path("teacher.generate.log").read_text()

            monkeypatch.setenv(KEY_VAR, server.api_key)
            # any endpoint but "local" (free): the price table has nothing for teacher-1
            app.change("teacher", provider="custom", base_url=server.base_url, api_key_env=KEY_VAR)
            await pilot.press("ctrl+r")  # the step is still usable
            await until(pilot, lambda: not screen.running)
            said = str(progress.render())
            assert "Done: 2/2" in said
            assert "tokens, cost unknown (set price_input_per_mtok" in said  # no price for it
