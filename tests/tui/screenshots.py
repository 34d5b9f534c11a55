"""Write real captures of every wizard screen at work into screenshots/ (SVG, plus PNG).

    python -m tests.tui.screenshots [--size 80x24] [--theme light] [--lang zh]

Each screen is driven by the same scenes as the snapshot tests, in a scratch
project with the tiny student; the teacher screen is captured mid-generation
against the loopback teacher server. PNGs need ``rsvg-convert`` (librsvg2-bin), and a CJK
font (fonts-wqy-microhei) for Chinese. ``--lang zh`` writes screenshots/zh/, same names.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from engine.i18n import LANGUAGES, use_language
from engine.tiny_model import build_tiny_model
from tests.teacher_server import TeacherServer
from tests.tui import scenes
from tests.tui.conftest import T4, no_gpu
from tui.app import THEMES, StillroomApp

KEY_VAR = "STILLROOM_SCREENSHOT_KEY"
OUT = Path(__file__).resolve().parents[2] / "screenshots"


async def capture(
    name: str, size: tuple[int, int], server: TeacherServer, out: Path, theme: str
) -> Path:
    app = StillroomApp(Path("stillroom-plan.toml"), gpu_probe=lambda: T4, gpu_sampler=no_gpu)
    app.theme = THEMES[theme]
    async with app.run_test(size=size) as pilot:
        if name == "teacher":
            await scenes.teacher(pilot, base_url=server.base_url)
            os.environ[KEY_VAR] = server.api_key
            app.change("teacher", api_key_env=KEY_VAR)
            app.screen.show_plan()
            await pilot.press("ctrl+r")
            await pilot.pause()
            while app.screen.running and not (
                app.screen.progress and app.screen.progress.done >= 3
            ):
                await pilot.pause(0.05)
        else:
            await scenes.SCENES[name](pilot)
        path = out / f"{name}-{size[0]}x{size[1]}.svg"
        app.save_screenshot(path.name, path=str(out))
        if name == "teacher":
            await pilot.press("ctrl+s")
            await scenes.settle(pilot)
    return path


async def main(sizes: list[tuple[int, int]], theme: str, lang: str = "en") -> None:
    use_language(lang)
    base = OUT if lang == "en" else OUT / lang
    out = base if theme == "dark" else base / theme
    out.mkdir(parents=True, exist_ok=True)
    converter = shutil.which("rsvg-convert")
    with tempfile.TemporaryDirectory() as scratch:
        model = build_tiny_model(Path(scratch) / "model")
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_HUB_CACHE"] = str(scenes.cache_default_student(Path(scratch) / "hub"))
        with TeacherServer(latency_s=0.3) as server:
            for size in sizes:
                for name in scenes.SCENES:
                    project = Path(scratch) / f"{name}-{size[0]}"
                    project.mkdir()
                    os.chdir(project)
                    scenes.prepare(project, model)
                    svg = await capture(name, size, server, out, theme)
                    if converter:
                        png = svg.with_suffix(".png")
                        subprocess.run([converter, str(svg), "-o", str(png)], check=True)
                    print(svg.relative_to(OUT.parent))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="capture the wizard's screens")
    parser.add_argument("--size", action="append", help="WxH (default: 80x24 and 120x40)")
    parser.add_argument("--theme", choices=list(THEMES), default="dark")
    parser.add_argument("--lang", choices=list(LANGUAGES), default="en")
    args = parser.parse_args()
    sizes = [tuple(int(n) for n in s.split("x")) for s in args.size or ["80x24", "120x40"]]
    asyncio.run(main(sizes, args.theme, args.lang))  # type: ignore[arg-type]
