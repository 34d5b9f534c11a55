"""Fixtures the promise tests share with the wizard's own tests: a project folder as the
working directory, and ``make_app`` for a wizard on it."""

from tests.tui.conftest import anyio_backend, make_app, project  # noqa: F401 - re-exported fixtures
