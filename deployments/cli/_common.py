"""Helpers shared by the CLI modules: one way to report errors, one way to show results.

The exit codes (README "Exit codes"): 0 done, 1 a valid request that failed (TikTok, the network, a
service), 2 input refused (an argument, an option, a setting, the source, the media, an account, a
privacy level, a schedule), 130 stopped at once. Every error is one `error: <message>` line on
stderr (`publish` writes one per account when TikTok or the network failed several), Typer's own
usage errors included (`OneLineErrors`), and a typed error logged by a Prefect task shows its one
line without a traceback on the terminal (`typed_errors_without_traceback`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

if TYPE_CHECKING:
    from publishing import PublishResult

# Wide enough for share URLs when output is not a terminal (CI logs, pipes).
console = Console(width=None if Console().is_terminal else 140)


def print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def when(moment: datetime | None) -> str:
    """A moment as the tables show it (UTC, to the second); blank for none."""
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else ""


#: Exit status of a command that refused its input (options, a request, media that cannot become a TikTok video).
EXIT_USAGE = 2
#: Exit status of work that was tried and failed (a post not made, ffmpeg failed, a file not written).
EXIT_FAILED = 1
#: Exit status after a second SIGINT/SIGTERM stopped a command at once.
EXIT_INTERRUPTED = 130


#: Characters an error line shows escaped (`\x1b`, `\u202e`): controls (a terminal would obey an ESC
#: sequence) and the bidirectional overrides and isolates (they reorder what the line shows).
_SHOWN_ESCAPED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


#: Longest error line shown: a 200,000-character argument echoed back is cut in its middle.
MAX_ERROR_LINE = 4000


def _error_line(message: str) -> str:
    text = _SHOWN_ESCAPED.sub(lambda m: m.group().encode("unicode_escape").decode(), str(message))
    text = " ".join(text.split()) or "failed"
    if len(text) > MAX_ERROR_LINE:
        text = f"{text[: MAX_ERROR_LINE * 3 // 4]} … {text[-MAX_ERROR_LINE // 4:]}"
    return f"error: {text}"


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """The one way a command reports an error: `error: <message>` as one line on stderr, then exit `code`."""
    typer.echo(_error_line(message), err=True)
    raise typer.Exit(code)


def fail_each(messages: Iterable[str], code: int = EXIT_FAILED) -> NoReturn:
    """`fail` with one `error:` line per message (e.g. one per account a request could not post)."""
    for message in messages:
        typer.echo(_error_line(message), err=True)
    raise typer.Exit(code)


class OneLineErrors(TyperGroup):
    """The command group of `tiktok-pipeline`: Typer's usage errors (an unknown option, a missing or
    unparsable value) are one `error:` line too, naming the command's --help, with Typer's exit code (2).

    A bare group (`tiktok-pipeline`, `tiktok-pipeline accounts`) still prints its help.
    """

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        from typer._click.exceptions import ClickException, NoArgsIsHelpError

        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except NoArgsIsHelpError as exc:
            typer.echo(exc.format_message())
            code = exc.exit_code
        except ClickException as exc:
            context = getattr(exc, "ctx", None)
            hint = f" (see `{context.command_path} --help`)" if context is not None else ""
            typer.echo(_error_line(f"{exc.format_message().rstrip('.')}{hint}"), err=True)
            code = exc.exit_code
        except typer.Abort:
            typer.echo(_error_line("aborted"), err=True)
            code = EXIT_FAILED
        sys.exit(code if isinstance(code, int) else 0)


class _WithoutTypedTraceback(logging.Formatter):
    """Formats as `inner` does, leaving out the traceback of a project error (its message says it all)."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        from tiktok_pipeline.errors import PipelineError

        if record.exc_info and isinstance(record.exc_info[1], PipelineError):
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return self.inner.format(record)


@contextmanager
def typed_errors_without_traceback() -> Iterator[None]:
    """While a flow runs in this process, Prefect's console shows a task that failed with a project
    error (typed: retryable, needs re-auth or final) as its one log line, without the traceback.

    Only the terminal's handler changes: the run's logs in the Prefect UI (the API handler) keep the
    traceback, the task stays Failed with its exception, and an unexpected exception (a bug) keeps its
    traceback on the terminal too.
    """
    from prefect.logging.handlers import PrefectConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    saved = [h.formatter for h in handlers]
    for handler in handlers:
        handler.setFormatter(_WithoutTypedTraceback(handler.formatter))
    try:
        yield
    finally:
        for handler, formatter in zip(handlers, saved):
            handler.setFormatter(formatter)  # type: ignore[arg-type]


@contextmanager
def watched_run() -> Iterator[None]:
    """Flow runs started in this process heartbeat as the work pool's runs do and carry their tag.

    The crash detection (deployments/automations.py) then marks a killed `publish` Crashed within
    minutes, as it does a killed worker's run: a later run of the same post takes its lease over at
    once and `cleanup` removes its working files, instead of the run showing Running forever.
    """
    from prefect import tags
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from deployments.automations import HEARTBEAT_SECONDS, RUN_TAG

    with tags(RUN_TAG), temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: HEARTBEAT_SECONDS}):
        yield


@contextmanager
def pipeline_errors(exit_code: int = EXIT_FAILED) -> Iterator[None]:
    """`fail` with a project error (exit `exit_code`) or an invalid model (exit 2): one line, no traceback.

    A retryable error (an unreachable ledger, S3 or TikTok) exits 1 whatever `exit_code` says: trouble
    that may pass by itself is never the input's fault.
    """
    from pydantic import ValidationError

    from tiktok_pipeline.errors import PipelineError

    try:
        yield
    except PipelineError as exc:
        fail(str(exc), EXIT_FAILED if exc.retryable else exit_code)
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
