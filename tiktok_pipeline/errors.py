"""The error-kind protocol shared by every core package.

Each core package (`tiktok`, `transcode`, `ledger`, `photos`) has its own hierarchy rooted in a subclass of
`PipelineError`; every class states, as class attributes, whether the failure is worth retrying or
needs the user to re-authorize. Anything that is neither is final. Prefect's `retry_condition_fn`
reads these attributes and nothing else (see `is_retryable`).
"""

from __future__ import annotations

from typing import Any


class PipelineError(Exception):
    """Base of every error this project raises on purpose."""

    #: Trying the same step again later may succeed (timeouts, 5xx, 429, transient I/O).
    retryable: bool = False
    #: The account's authorization must be refreshed or re-granted before anything else works.
    needs_reauth: bool = False

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        #: Machine detail attached for logs and artifacts (server answer, ffmpeg stderr, ...).
        self.detail = detail

    @property
    def final(self) -> bool:
        """Neither retrying nor re-authorizing will help."""
        return not (self.retryable or self.needs_reauth)

    @property
    def kind(self) -> str:
        if self.retryable:
            return "retryable"
        if self.needs_reauth:
            return "needs_reauth"
        return "final"

    def __str__(self) -> str:
        return self.message


def is_retryable(exc: BaseException) -> bool:
    """True only for errors of this project that declare themselves retryable."""
    return isinstance(exc, PipelineError) and exc.retryable


def needs_reauth(exc: BaseException) -> bool:
    return isinstance(exc, PipelineError) and exc.needs_reauth
