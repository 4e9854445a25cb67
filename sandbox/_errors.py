"""Errors of the sandbox: its own failures (`SandboxError`) and the refusals it answers with.

    PipelineError (tiktok_pipeline.errors)
    └── SandboxError                    final        bad config file, server did not start

`ApiRefusal` and `OAuthRefusal` (plain `Exception`s, private) are not failures of this program:
they are TikTok's answers to a request (envelope error or flat OAuth error) raised from deep in the
state logic and rendered by the app's exception handlers as HTTP answers; no caller ever sees them.
"""

from __future__ import annotations

from tiktok_pipeline.errors import PipelineError


class SandboxError(PipelineError):
    """The sandbox cannot run as asked (bad config file, server did not start)."""


class ApiRefusal(Exception):
    """An envelope error answer: `{"data": {}, "error": {"code", "message", "log_id"}}`."""

    def __init__(self, status_code: int, code: str, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers or {}


class OAuthRefusal(Exception):
    """A flat OAuth error answer: `{"error", "error_description", "log_id"}`."""

    def __init__(self, status_code: int, error: str, description: str):
        super().__init__(f"{status_code} {error}: {description}")
        self.status_code = status_code
        self.error = error
        self.description = description
