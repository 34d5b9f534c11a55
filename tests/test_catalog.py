"""Stillroom speaks Simplified Chinese as well as English: the catalog is whole and current,
the language is chosen the way the README says, and the source keeps translation possible."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from engine.i18n import choose_language

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import catalog  # noqa: E402  scripts/catalog.py (needs Babel, in the test extra)


def test_every_message_has_a_chinese_translation_with_the_same_placeholders() -> None:
    """No English left in the zh catalog, no stale entries, placeholders intact, .mo current."""
    problems = catalog.problems()
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} in all)"


def _python_files() -> list[Path]:
    return [path for folder in catalog.SOURCES for path in sorted((ROOT / folder).rglob("*.py"))]


def test_translated_modules_never_rebind_the_underscore() -> None:
    """`x, _ = f()` in a function that also calls `_()` would break every translated line."""
    offenders = []
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            calls = any(
                isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_"
                for node in ast.walk(function)
            )
            # A comprehension's `_` lives in the comprehension's own scope: harmless.
            scoped = {
                id(name)
                for node in ast.walk(function)
                if isinstance(node, ast.comprehension)
                for name in ast.walk(node.target)
            }
            binds = any(
                isinstance(node, ast.Name)
                and node.id == "_"
                and isinstance(node.ctx, ast.Store)
                and id(node) not in scoped
                for node in ast.walk(function)
            )
            if calls and binds:
                offenders.append(f"{path.relative_to(ROOT)}:{function.lineno} {function.name}")
    assert not offenders, offenders


def test_messages_are_whole_sentences_formatted_after_translation() -> None:
    """`_(f"...")` cannot be translated: the catalog would need one entry per value."""
    offenders = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) in {"_", "N_"}
                and node.args
                and not isinstance(node.args[0], ast.Constant)
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


@pytest.mark.parametrize(
    ("flag", "environ", "remembered", "expected"),
    [
        ("zh", {"STILLROOM_LANG": "en"}, "en", "zh"),
        (None, {"STILLROOM_LANG": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}, "en", "zh"),
        (None, {"LANG": "en_US.UTF-8"}, "zh", "zh"),
        (None, {"LANG": "zh_CN.UTF-8"}, None, "zh"),
        (None, {"LC_ALL": "en_GB.UTF-8", "LANG": "zh_CN.UTF-8"}, None, "en"),
        (None, {"LANG": "C.UTF-8"}, None, "en"),
        (None, {}, None, "en"),
    ],
)
def test_language_precedence(flag, environ, remembered, expected) -> None:
    """--lang, then $STILLROOM_LANG, then the remembered choice, then the locale, else English."""
    assert choose_language(flag, environ, remembered) == expected


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_help_and_argparse_errors_in_chinese_from_the_flag_or_the_locale() -> None:
    """`--lang zh` anywhere, or a zh_CN locale, gives Chinese help and Chinese usage errors."""
    shown = _cli("--lang", "zh", "--help", env={})
    assert shown.returncode == 0 and "用法：" in shown.stdout and "蒸馏" in shown.stdout
    wrong = _cli("nosuch", "--lang=zh", env={})
    assert wrong.returncode == 2 and "无效的选项" in wrong.stderr
    by_locale = _cli("--help", env={"STILLROOM_LANG": "", "LANG": "zh_CN.UTF-8"})
    assert "用法：" in by_locale.stdout
    english = _cli("--help", env={})
    assert "usage:" in english.stdout and "蒸馏" not in english.stdout
