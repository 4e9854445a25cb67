"""Names: the rule for account names, and flow run names that say what a run does. Pure functions, no Prefect.

Account names (`check_account_name`): 1-64 letters, digits, '.', '_' or '-', starting with a letter or
digit, the ledger's own rule, checked here before anything is asked of TikTok (`accounts connect` runs
it before the OAuth exchange starts; `PublishRequest` runs it on every name it is given).

Run names (`sample.mp4 → main, private`): Prefect shows the name in the runs list, in notifications
and in the run's page title, so it names the video and the accounts instead of Prefect's random
adjective-animal pair. Control and bidirectional characters of a source (an S3 key may hold them) are
shown as U+FFFD, so a name is one line that reads in the order it is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

from ledger import ACCOUNT_NAME_PATTERN, MAX_ACCOUNT_NAME_LENGTH
from publishing._text import TextKind, check_text, visible
from tiktok_pipeline.errors import PipelineError

#: The ledger's account name rule (ledger.Ledger.upsert_account refuses any other name), checked here
#: before anything (OAuth, a run) starts.
ACCOUNT_NAME_MAX_LENGTH = MAX_ACCOUNT_NAME_LENGTH
ACCOUNT_NAME_RULE = (f"use 1-{ACCOUNT_NAME_MAX_LENGTH} letters, digits, '.', '_' or '-', "
                     "starting with a letter or digit")


class AccountNameInvalid(PipelineError):
    """A name that can never be an account's (final: choose another name)."""


def check_account_name(name: str) -> str:
    """`name`, unchanged, when it can name an account; else AccountNameInvalid saying what is wrong with it."""
    try:
        check_text("account name", name, TextKind.line)
    except PipelineError as exc:
        raise AccountNameInvalid(str(exc), detail=getattr(exc, "detail", None)) from None
    if ACCOUNT_NAME_PATTERN.fullmatch(name) is None:
        shown = name if len(name) <= 2 * ACCOUNT_NAME_MAX_LENGTH else _middle_cut(name, 2 * ACCOUNT_NAME_MAX_LENGTH)
        raise AccountNameInvalid(f"account name {shown!r} is not valid: {ACCOUNT_NAME_RULE}",
                                 detail={"length": len(name)})
    return name

#: Longest file name and account name kept whole; how many accounts are named before "+N more".
MAX_FILE_NAME = 40
MAX_ACCOUNT_NAME = 24
MAX_NAMED_ACCOUNTS = 3


def _middle_cut(text: str, limit: int) -> str:
    """`a-very-long-name…-take-7.mp4`: the start and the end (extension) survive."""
    if len(text) <= limit:
        return text
    tail = max(limit // 3, 1)
    return text[: limit - tail - 1] + "…" + text[-tail:]


def source_name(source: str) -> str:
    """The file name of an s3:// key, an https:// URL's path or a local path (the source when it has none)."""
    scheme = urlparse(source).scheme
    if scheme == "s3":
        path = unquote(source.removeprefix("s3://").partition("/")[2])
    elif scheme in ("http", "https", "file"):
        path = unquote(urlparse(source).path)
    else:
        path = source
    name = PurePosixPath(path.replace("\\", "/").rstrip("/")).name
    return _middle_cut(visible(name or source.strip() or "video"), MAX_FILE_NAME)


def accounts_label(accounts: Sequence[str]) -> str:
    """`main, private`; `a, b, c +4 more` beyond MAX_NAMED_ACCOUNTS."""
    named = [_middle_cut(visible(a), MAX_ACCOUNT_NAME) for a in accounts[:MAX_NAMED_ACCOUNTS]]
    rest = len(accounts) - len(named)
    return ", ".join(named) + (f" +{rest} more" if rest > 0 else "") if named else "no account"


def publish_run_name(source: str, accounts: Sequence[str], mode: str | None = None) -> str:
    """`sample.mp4 → main, private`, with the mode when it is not a direct post (`(hold)`, `(inbox)`)."""
    suffix = f" ({mode})" if mode and mode != "direct" else ""
    return f"{source_name(source)} → {accounts_label(accounts)}{suffix}"


def photo_run_name(images: Sequence[str], accounts: Sequence[str], mode: str | None = None) -> str:
    """`3 photos from a.jpg → main, private` (`a.jpg → main` for one), with the mode as for a video."""
    first = source_name(images[0]) if images else "photos"
    return publish_run_name(first, accounts, mode) if len(images) <= 1 else publish_run_name(
        f"{len(images)} photos from {first}", accounts, mode)


def release_run_name(post_id: int, mode: str) -> str:
    """`release post 12 → direct`."""
    return f"release post {post_id} → {mode}"


def deferred_run_name(post_id: int) -> str:
    """`deferred post 12`: the post a daily cap held back, sent in its next free slot."""
    return f"deferred post {post_id}"


def s3_object_run_name(bucket: str, key: str) -> str:
    """`clip.mp4 from s3://media/incoming/`: the object and where it was uploaded."""
    folder = key.rpartition("/")[0]
    where = _middle_cut(visible(f"s3://{bucket}/{folder + '/' if folder else ''}"), MAX_FILE_NAME)
    return f"{source_name(f's3://{bucket}/{key}')} from {where}"
