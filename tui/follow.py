"""Follow a run's events in the terminal: a live Rich panel, or plain lines when piped.

Shared by ``stillroom train`` and ``stillroom attach``. Ctrl-C detaches: the
run keeps training in its own process, and the message says how to come back.
A resumed run shows its earlier attempts first, one line each, as history: their
steps are never replayed as progress, and only the followed attempt's ending
decides the exit code.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from engine import events as ev
from engine.i18n import _
from engine.runs import current_attempt, follow, history
from tui.wording import describe, describe_attempt, duration

EXIT_CODES = {"finished": 0, "cancelled": 0, "error": 1}


class _Board:
    """The latest values worth showing; fed every event, rendered on demand."""

    def __init__(self, name: str):
        self.name = name
        self.step: ev.Step | None = None
        self.gpu: ev.GpuSample | None = None
        self.backend = ""

    def update(self, event: ev.Event) -> None:
        if isinstance(event, ev.Step):
            self.step = event
        elif isinstance(event, ev.GpuSample):
            self.gpu = event
        elif isinstance(event, ev.Started):
            self.backend = _("{backend} on {device}").format(
                backend=event.backend, device=event.device
            )

    def line(self) -> str:
        s = self.step
        if s is None:
            return _("{run}: loading ({what})").format(
                run=self.name, what=self.backend or _("starting")
            )
        loss = f"{s.loss:.4f}" if s.loss is not None else "-"
        lr = f"{s.lr:.2e}" if s.lr is not None else "-"
        tps = f"{s.tokens_per_s:,.0f}" if s.tokens_per_s is not None else "-"
        return _(
            "step {step}/{total}  loss {loss}  lr {lr}  tok/s {tps}  ETA {eta}  GPU {memory}"
        ).format(
            step=s.step,
            total=s.max_steps,
            loss=loss,
            lr=lr,
            tps=tps,
            eta=duration(s.eta_s),
            memory=self._memory(),
        )

    def _memory(self) -> str:
        if self.gpu is not None:
            return f"{self.gpu.mem_used_mb / 1024:.1f}/{self.gpu.mem_total_mb / 1024:.0f} GB"
        if self.step and self.step.mem_reserved_mb is not None:
            return _("{size} GB reserved").format(size=f"{self.step.mem_reserved_mb / 1024:.1f}")
        return "-"

    def table(self) -> Table:
        grid = Table.grid(padding=(0, 2))
        grid.add_row(f"[b]{self.name}[/b]", self.backend)
        grid.add_row("", self.line())
        return grid


def follow_run(run_dir: Path, console: Console | None = None, attempt: int | None = None) -> int:
    """Show one attempt of the run (the current one by default) until it ends or Ctrl-C.

    Exit code: 0 finished or cancelled, 1 failed; 0 on Ctrl-C (the run goes on).
    """
    console = console or Console()
    board = _Board(Path(run_dir).name)
    last = None
    attempt = attempt or current_attempt(run_dir)
    for earlier in history(run_dir, attempt):
        console.print(f"[dim]{escape(describe_attempt(earlier))}[/]", highlight=False)
    try:
        if console.is_terminal:
            with Live(board.table(), console=console, refresh_per_second=4, transient=True) as live:
                for event in follow(run_dir, attempt=attempt):
                    last = _show(event, board, live.console)
                    live.update(board.table())
        else:
            for event in follow(run_dir, attempt=attempt):
                last = _show(event, board, console)
                if isinstance(event, ev.Step):
                    console.print(board.line(), highlight=False)
    except KeyboardInterrupt:
        console.print(
            _("Detached; training goes on. Re-attach: {attach}   Stop it: {cancel}").format(
                attach=f"stillroom attach {run_dir}", cancel=f"stillroom cancel {run_dir}"
            )
        )
        return 0
    if last is None:
        return 1
    if console.is_terminal:  # the live panel was transient: keep its last state in scrollback
        console.print(board.line(), highlight=False)
    return EXIT_CODES.get(last, 1)


def _show(event: ev.Event, board: _Board, console: Console) -> str | None:
    board.update(event)
    text = describe(event)
    if text:
        console.print(text, highlight=False, markup=True)
    return event.type if event.type in ev.TERMINAL else None
