"""CLI commands for the media area: `probe` and `transcode`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from deployments.cli._common import EXIT_FAILED, EXIT_USAGE, fail

# Exit status: EXIT_USAGE (2) for input that cannot become a TikTok video (bad file, too long with
# reject, bad options); EXIT_FAILED (1) for everything else (ffmpeg failed, timeout, non-compliant output).


def register(app: typer.Typer) -> None:
    app.command("probe")(probe_command)
    app.command("transcode")(transcode_command)


def probe_command(
    input: Annotated[Path, typer.Argument(help="Media file to describe")],
) -> None:
    """Print what ffprobe says about INPUT (MediaInfo) as JSON."""
    from transcode import TranscodeError, probe

    _check_input(input)
    try:
        info = probe(input)
    except TranscodeError as exc:
        _report(exc)
    typer.echo(info.model_dump_json(indent=2))


def transcode_command(
    input: Annotated[Path, typer.Argument(help="Source video")],
    output: Annotated[Path, typer.Argument(help="TikTok-ready MP4 to write")],
    fit: Annotated[str, typer.Option(help="How a non-9:16 picture fills 1080x1920: blur, pad or crop")] = "blur",
    max_duration: Annotated[
        float | None, typer.Option(help="Longest allowed post in seconds (the creator's limit; default 600)")
    ] = None,
    max_bytes: Annotated[int | None, typer.Option(help="Largest allowed file in bytes (default 4 GB)")] = None,
    on_too_long: Annotated[str, typer.Option(help="trim or reject a video over --max-duration")] = "trim",
    loudnorm: Annotated[bool, typer.Option(help="Normalise loudness to -14 LUFS (two passes)")] = False,
) -> None:
    """Make INPUT TikTok-ready (H.264/AAC 1080x1920 MP4) at OUTPUT and print the path taken."""
    from pydantic import ValidationError
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from transcode import FitMode, OverLength, Policy, TranscodeError, make_tiktok_ready

    settings: dict[str, object] = {"loudnorm": loudnorm}
    if max_duration is not None:
        settings["max_duration"] = max_duration
    if max_bytes is not None:
        settings["max_bytes"] = max_bytes
    try:
        policy = Policy(fit=FitMode(fit), on_too_long=OverLength(on_too_long), **settings)  # type: ignore[arg-type]
    except (ValueError, ValidationError) as exc:
        fail(f"invalid option: {exc}", EXIT_USAGE)
    _check_input(input)
    if (problem := _output_problem(input, output)) is not None:
        fail(problem, EXIT_USAGE)

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    console = Console(stderr=True)
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"transcoding {input.name}", total=1.0)
        try:
            result = make_tiktok_ready(input, output, policy,
                                       on_progress=lambda done: bar.update(task, completed=done))
        except TranscodeError as exc:
            bar.stop()
            _report(exc)
    typer.echo(f"{result.path.value}: {result.output.path} "
               f"({result.output.size} bytes, {result.output.duration or 0:.2f} s, {result.elapsed:.1f} s)")


def _check_input(input: Path) -> None:
    """Exit 2 when INPUT is missing, unreadable or not a regular file (a folder, a FIFO, a device), unopened."""
    from publishing.sources import local_file_problem

    if (problem := local_file_problem(input)) is not None:
        fail(str(problem), EXIT_USAGE)


def _output_problem(input: Path, output: Path) -> str | None:
    """Why OUTPUT cannot be written as the TikTok-ready copy of INPUT, or None: checked before ffmpeg runs."""
    try:
        same = output.resolve() == input.resolve() or (output.exists() and input.exists() and output.samefile(input))
    except (OSError, RuntimeError, ValueError) as exc:  # a loop of links, a NUL byte, a name too long
        return f"cannot use {output} as the output: {exc}"
    if same:
        return f"OUTPUT {output} is INPUT: write the TikTok-ready file elsewhere (the input is never overwritten)"
    folder = output.parent
    if output.is_dir():
        return f"OUTPUT {output} is a folder: give the path of the file to write"
    if not folder.exists():
        return f"the folder of OUTPUT, {folder}, does not exist: create it first"
    if not folder.is_dir():
        return f"the folder of OUTPUT, {folder}, is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder of OUTPUT, {folder}, is not writable"
    return None


def _report(exc: Exception) -> NoReturn:
    """`fail` with a transcode error: exit 2 for input that cannot become a TikTok video, else 1."""
    from transcode import InvalidMediaError

    fail(str(exc), EXIT_USAGE if isinstance(exc, InvalidMediaError) else EXIT_FAILED)
