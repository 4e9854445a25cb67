"""Helpers shared by the CLI modules: one way to report errors, one way to show results."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from publishing import PublishResult

# Wide enough for share URLs when output is not a terminal (CI logs, pipes).
console = Console(width=None if Console().is_terminal else 140)


#: Exit status of a command that refused its input (options, a request, media that cannot become a TikTok video).
EXIT_USAGE = 2
#: Exit status of work that was tried and failed (a post not made, ffmpeg failed, a file not written).
EXIT_FAILED = 1
#: Exit status after a second SIGINT/SIGTERM stopped a command at once.
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """The one way a command reports an error: `error: <message>` as one line on stderr, then exit `code`.

    Typer's own usage errors (an unknown option, a missing argument) stay Typer's.
    """
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


@contextmanager
def pipeline_errors(exit_code: int = EXIT_FAILED) -> Iterator[None]:
    """`fail` with a project error (exit `exit_code`) or an invalid model (exit 2): one line, no traceback."""
    from pydantic import ValidationError

    from tiktok_pipeline.errors import PipelineError

    try:
        yield
    except PipelineError as exc:
        fail(str(exc), exit_code)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']}" for e in exc.errors())
        what = "settings" if exc.title == "Settings" else "request"
        fail(f"invalid {what}: {problems}", EXIT_USAGE)


def results_table(results: Sequence[PublishResult], title: str = "Publish results") -> Table:
    """One row per account; the step timings go in `timings_table`."""
    table = Table(title=title, expand=False)
    table.add_column("account", no_wrap=True)
    table.add_column("nickname")
    table.add_column("state", no_wrap=True)
    table.add_column("privacy", no_wrap=True)
    table.add_column("share URL / error", overflow="fold")
    for r in results:
        detail = r.share_url or (f"{r.error_code}: {r.error_message}" if r.error_message else "")
        if r.reused:
            detail = f"(earlier result) {detail}".strip()
        style = "green" if r.ok else "red"
        table.add_row(r.account, r.nickname or "", f"[{style}]{r.state.value}[/]", r.privacy_level or "", detail)
    return table


def timings_table(results: Sequence[PublishResult]) -> Table:
    steps: list[str] = []
    for r in results:
        steps += [t.step for t in r.timings if t.step not in steps]
    table = Table(title="Seconds per step")
    table.add_column("account", no_wrap=True)
    for step in steps:
        table.add_column(step, justify="right")
    for r in results:
        seconds = {t.step: t.seconds for t in r.timings}
        table.add_row(r.account, *(f"{seconds[s]:.2f}" if s in seconds else "-" for s in steps))
    return table
