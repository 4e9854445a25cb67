"""What `tiktok-pipeline posts list` accepts as --since and --status (parsing only, no ledger I/O)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from tiktok_pipeline.errors import PipelineError

if TYPE_CHECKING:
    from ledger import PostState

__all__ = ["InvalidFilter", "parse_since", "parse_states"]

_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class InvalidFilter(PipelineError):
    """A --since, --status or --limit value the commands cannot use."""


def parse_since(text: str, now: datetime) -> datetime:
    """`2026-11-01` (UTC midnight), an ISO datetime (UTC unless it has an offset) or a span back
    from `now`: `30m`, `24h`, `7d`, `2w`."""
    value = text.strip()
    if match := _RELATIVE.match(value):
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidFilter(
            f"--since {text!r} is not a date (2026-11-01), a datetime (2026-11-01T08:00) or a span (30m, 24h, 7d, 2w)",
            detail={"since": text},
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_states(values: list[str]) -> list[PostState] | None:
    """--status values (repeatable, or comma-separated) as states; None when none were given."""
    from ledger import PostState

    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    unknown = sorted({name for name in names if name not in PostState.__members__})
    if unknown:
        raise InvalidFilter(
            f"unknown --status {', '.join(unknown)}; states are {', '.join(PostState)}", detail={"unknown": unknown}
        )
    return [PostState(name) for name in dict.fromkeys(names)] or None
