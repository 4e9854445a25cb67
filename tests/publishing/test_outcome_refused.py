"""`Verdict.refused`: a run whose accounts were all refused for what the request asked (CLI exit 2),
told apart from one TikTok, the network or a service failed (exit 1)."""

from __future__ import annotations

import pytest

from ledger import PostState, PublishMode
from publishing import PublishResult, verdict
from publishing._outcome import refused_codes


def failed(account: str, code: str, state: PostState = PostState.failed) -> PublishResult:
    return PublishResult(account=account, state=state, mode=PublishMode.direct, error_code=code, error_message=code)


@pytest.mark.parametrize("code", ["SourceNotFound", "InvalidSource", "SourceUnreachable", "SourceTooLarge",
                                  "SourceCredentialsMissing", "NotMediaError", "TooShortError", "TooLongError",
                                  "PrivacyNotAllowed", "DurationOverCreatorMax", "privacy_level_option_mismatch",
                                  "AccountNotFound", "LedgerInputInvalid", "PreflightFailed", "DeploymentNotFound"])
def test_refusals_of_the_request(code: str) -> None:
    outcome = verdict([PublishResult(account="main", state=PostState.published), failed("private", code)])
    assert not outcome.ok and outcome.refused and outcome.not_posted == ("private",)


@pytest.mark.parametrize("code", ["ServerError", "TransportError", "RateLimitExceeded", "SourceUnavailable",
                                  "DatabaseUnavailable", "AccountNeedsReconnect", "SpamRiskTooManyPosts",
                                  "UploadError", "FFmpegError", "PublishFailed", "spam_risk_too_many_posts", None])
def test_failures_of_a_valid_request(code: str | None) -> None:
    outcome = verdict([failed("main", "NotMediaError"), failed("private", code)])  # one failure is enough
    assert not outcome.ok and not outcome.refused


def test_done_runs_are_never_refused_and_every_subclass_counts() -> None:
    assert not verdict([PublishResult(account="main", state=PostState.published)]).refused
    from transcode import InvalidMediaError

    def subclasses(root: type) -> set[str]:
        return {root.__name__}.union(*(subclasses(c) for c in root.__subclasses__()))

    assert subclasses(InvalidMediaError) <= refused_codes()
