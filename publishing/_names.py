"""Flow run names that say what a run does (`sample.mp4 → main, private`): pure functions, no Prefect.

Prefect shows the name in the runs list, in notifications and in the run's page title, so it names
the video and the accounts instead of Prefect's random adjective-animal pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

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
    return _middle_cut(name or source.strip() or "video", MAX_FILE_NAME)


def accounts_label(accounts: Sequence[str]) -> str:
    """`main, private`; `a, b, c +4 more` beyond MAX_NAMED_ACCOUNTS."""
    named = [_middle_cut(a, MAX_ACCOUNT_NAME) for a in accounts[:MAX_NAMED_ACCOUNTS]]
    rest = len(accounts) - len(named)
    return ", ".join(named) + (f" +{rest} more" if rest > 0 else "") if named else "no account"


def publish_run_name(source: str, accounts: Sequence[str], mode: str | None = None) -> str:
    """`sample.mp4 → main, private`, with the mode when it is not a direct post (`(hold)`, `(inbox)`)."""
    suffix = f" ({mode})" if mode and mode != "direct" else ""
    return f"{source_name(source)} → {accounts_label(accounts)}{suffix}"


def release_run_name(post_id: int, mode: str) -> str:
    """`release post 12 → direct`."""
    return f"release post {post_id} → {mode}"


def deferred_run_name(post_id: int) -> str:
    """`deferred post 12`: the post a daily cap held back, sent in its next free slot."""
    return f"deferred post {post_id}"


def s3_object_run_name(bucket: str, key: str) -> str:
    """`clip.mp4 from s3://media/incoming/`: the object and where it was uploaded."""
    folder = key.rpartition("/")[0]
    where = _middle_cut(f"s3://{bucket}/{folder + '/' if folder else ''}", MAX_FILE_NAME)
    return f"{source_name(f's3://{bucket}/{key}')} from {where}"
