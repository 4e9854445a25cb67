"""Whether a publish run did what it was asked, and how to say so: pure functions, no Prefect.

A run is done for an account when its post ended published or in the creator's inbox, or is waiting
by design: held (mode hold, nothing sent), scheduled (schedule_at in the future) or deferred (daily
cap used up, scheduled for the next free slot). Anything else means the account was not posted, and
the run says which accounts and why:

    >>> verdict(results).message
    '1 of 2 accounts not posted — private: privacy PUBLIC_TO_EVERYONE is not available to Private Creator; ...'

An account can be refused for what the request asked (`refused_for_input`): its source, its media, an
account that is not connected, a privacy level the creator does not offer, a schedule no deployment
can run. Running the same request again fails the same way, so the caller must change it: the CLI
exits 2 then, and 1 when TikTok, the network or a service failed a valid request.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger import PostState
from publishing._models import PublishResult

#: Steps whose seconds the run table shows, in pipeline order.
TIMED_STEPS = ("ingest", "transcode", "init", "upload", "poll")
#: Longest reason kept per account in a state message, and longest message (Prefect shows it whole).
_MAX_REASON = 400
_MAX_MESSAGE = 2000

#: What a post left in this state (with no error message of its own) means to the caller.
_STOPPED_IN = {
    PostState.queued: "stopped before TikTok was asked",
    PostState.media_ready: "stopped before TikTok was asked",
    PostState.initialized: "upload interrupted; run the same request again within the hour to resume",
    PostState.uploaded: "uploaded, but its status was never read; the cleanup flow settles it",
    PostState.processing: "TikTok is still processing it; the cleanup flow records how it ends",
    PostState.unconfirmed: "TikTok's answer was lost; the cleanup flow reconciles it",
    PostState.failed: "failed",
    PostState.discarded: "discarded",
}


#: Error codes set by the service layer itself for a request it refuses (no exception class of a core package).
_REFUSED_CODES = frozenset({
    "PreflightFailed",  # publishing.posting: the ledger's key, AWS credentials: settings to fix first
    "DeploymentNotFound",  # a schedule_at with no publish-video deployment to run it
    "privacy_level_option_mismatch",  # TikTok's own code for a privacy level the creator does not offer
})


@functools.cache
def refused_codes() -> frozenset[str]:
    """Every error code meaning "refused for what was asked": the class names of the final errors about
    the source, the media, an account name, the settings or a TikTok rule checked before sending, and
    the codes of `_REFUSED_CODES`. Network, TikTok and service failures are not among them, nor an
    account whose authorization TikTok refused during the run (AccountNeedsReconnect: a reconnect,
    not a changed request, is the fix)."""
    from ledger import AccountNotFound, EncryptionKeyInvalid, EncryptionKeyMissing, LedgerInputInvalid
    from publishing.sources import InvalidSource, SourceAccessDenied, SourceNotFound, SourceTooLarge, SourceUnreachable
    from tiktok import InvalidInput, PrivacyLevelOptionMismatch
    from transcode import InvalidMediaError

    def tree(root: type) -> set[type]:
        found = {root}
        for child in root.__subclasses__():
            found |= tree(child)
        return found

    roots = (InvalidSource, SourceNotFound, SourceAccessDenied, SourceTooLarge, SourceUnreachable, InvalidMediaError,
             InvalidInput, PrivacyLevelOptionMismatch, AccountNotFound, LedgerInputInvalid, EncryptionKeyMissing,
             EncryptionKeyInvalid)
    return _REFUSED_CODES | {cls.__name__ for root in roots for cls in tree(root)}


def refused_for_input(result: PublishResult) -> bool:
    """The account was not posted because of what the request asked (see `refused_codes`)."""
    return not is_done(result) and result.error_code in refused_codes()


@dataclass(frozen=True)
class Verdict:
    """The run's final word: `ok` (every account done) and the state message that says so.

    `refused`: not ok, and every account not posted was refused for what the request asked
    (`refused_for_input`): the same request fails the same way until it is changed.
    """

    ok: bool
    message: str
    not_posted: tuple[str, ...] = ()
    refused: bool = False


def is_done(result: PublishResult) -> bool:
    """Published, sent to the inbox, held, scheduled or deferred: what was asked for happened."""
    return result.ok or result.pending


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _when(result: PublishResult) -> str:
    return f"{result.scheduled_for:%Y-%m-%d %H:%M} UTC" if result.scheduled_for else "later"


def done_label(result: PublishResult) -> str:
    """How a done result reads: `published`, `held as post 12`, `deferred to 2026-11-04 09:00 UTC (daily cap)`."""
    if result.state is PostState.published:
        return "published"
    if result.state is PostState.sent_to_inbox:
        return "sent to the inbox"
    if result.held:
        held = f"held as post {result.post_id}" if result.post_id is not None else "held"
        return f"{held} ({result.error_message})" if result.error_message else held
    if result.scheduled_for is not None and result.error_code == "DailyCapReached":
        return f"deferred to {_when(result)} (daily cap)"
    if result.scheduled_for is not None:
        return f"scheduled for {_when(result)}"
    return str(result.state)


def failure_reason(result: PublishResult) -> str:
    """Why an account was not posted, in one line: its error, or what its post's state means."""
    reason = result.error_message or _STOPPED_IN.get(result.state, str(result.state))
    if result.error_message and result.state not in (PostState.failed, PostState.queued, PostState.media_ready):
        reason = f"{result.state}: {reason}"
    if result.reused:
        reason = f"earlier run: {reason}"
    return _shorten(reason, _MAX_REASON)


def _grouped(items: Sequence[tuple[str, str]]) -> str:
    """`a, b: same reason; c: other reason`: accounts sharing a reason are named together."""
    groups: dict[str, list[str]] = {}
    for account, reason in items:
        groups.setdefault(reason, []).append(account)
    return "; ".join(f"{', '.join(accounts)}: {reason}" for reason, accounts in groups.items())


def _accounts(count: int) -> str:
    return f"{count} account" + ("" if count == 1 else "s")


def verdict(results: Sequence[PublishResult]) -> Verdict:
    """Completed when every account is done; otherwise failed, naming each account not posted and why."""
    if not results:
        return Verdict(ok=False, message="no account was published: the run produced no result")
    missing = [r for r in results if not is_done(r)]
    if missing:
        detail = _grouped([(r.account, failure_reason(r)) for r in missing])
        message = f"{len(missing)} of {_accounts(len(results))} not posted — {detail}"
        return Verdict(ok=False, message=_shorten(message, _MAX_MESSAGE), not_posted=tuple(r.account for r in missing),
                       refused=all(refused_for_input(r) for r in missing))
    detail = _grouped([(r.account, done_label(r)) for r in results])
    return Verdict(ok=True, message=_shorten(f"{_accounts(len(results))} done — {detail}", _MAX_MESSAGE))


def link_or_error(result: PublishResult) -> str:
    """The share URL, the error, or what the state means (the run table's last text column)."""
    if result.share_url:
        return result.share_url
    if is_done(result):
        if result.ok and result.privacy_level == "SELF_ONLY":
            return f"{done_label(result)} (SELF_ONLY: visible to the creator only, no public link)"
        if result.ok and result.state is PostState.published:
            return "published (TikTok has not assigned a public link yet)"
        return done_label(result)
    return failure_reason(result)


def summary_rows(results: Sequence[PublishResult]) -> list[dict[str, Any]]:
    """One row per account for the run-level table artifact: who, how it ended, seconds per step."""
    rows = []
    for r in results:
        seconds = {t.step: t.seconds for t in r.timings}
        row: dict[str, Any] = {
            "account": r.account,
            "nickname": r.nickname or "",
            "state": str(r.state),
            "done": "yes" if is_done(r) else "NO",
            # Before the identifiers: the UI shows the first columns without scrolling.
            "link or error": link_or_error(r),
            "privacy": r.privacy_level or "",
            "publish_id": r.publish_id or "",
            "post_id": r.post_id if r.post_id is not None else "",
        }
        row |= {f"{step} s": round(seconds[step], 2) if step in seconds else "" for step in TIMED_STEPS}
        rows.append(row)
    return rows


def post_markdown(result: PublishResult) -> str:
    """The per-post artifact: publish_id, status, privacy and link (or why there is none)."""
    who = result.nickname or result.account
    lines = [f"# TikTok post by {who}", "", f"- account: `{result.account}`", f"- state: **{result.state}**"]
    if result.mode is not None:
        lines.append(f"- mode: {result.mode}")
    lines.append(f"- publish_id: `{result.publish_id}`" if result.publish_id else "- publish_id: none (TikTok was not asked)")
    if result.privacy_level:
        lines.append(f"- privacy: {result.privacy_level}")
    if result.share_url:
        lines.append(f"- link: [{result.share_url}]({result.share_url})")
    else:
        lines.append(f"- link: none — {link_or_error(result)}")
    if result.error_message and not is_done(result):
        lines.append(f"- error: `{result.error_code}` {result.error_message}")
    if result.post_id is not None:
        lines.append(f"- ledger post {result.post_id}: `tiktok-pipeline posts show {result.post_id}`")
    if result.reused:
        lines.append("- this is the result of an earlier run of the same request (nothing was sent again)")
    return "\n".join(lines)


def post_description(result: PublishResult) -> str:
    """One line for the per-post artifact's description."""
    outcome = done_label(result) if is_done(result) else f"NOT posted ({result.state})"
    ident = f" · {result.publish_id}" if result.publish_id else ""
    return f"{result.nickname or result.account}: {outcome}{ident}"
