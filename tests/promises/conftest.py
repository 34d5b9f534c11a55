"""Fixtures the promise tests share with the wizard's own tests: a project folder as the
working directory, and ``make_app`` for a wizard on it."""

from tests.tui.conftest import (  # noqa: F401 - re-exported fixtures
    anyio_backend,
    lang,
    make_app,
    project,
    speaking,
)
