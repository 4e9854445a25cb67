"""Which ledger post a request means, and which request a stored post was made with: pure functions.

A post's idempotency key is normally known once the video is fetched (its content hash is part of
the default key). A request that fails before that (source unreachable, a credential missing) is
still recorded, under a key made of the request alone (`unfetched:` + hash of source, account,
caption, mode and the caller's key): running the same broken request again finds that record, and
once the source is fixed the real post is created under its usual key and the unfetched record is
closed as superseded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from ledger import PostEvent, default_idempotency_key
from publishing._models import PublishRequest

UNFETCHED_PREFIX = "unfetched:"
#: Event kinds whose data carries the request an attempt of the post was made with.
REQUEST_EVENT_KINDS = frozenset({"request", "deferred", "reviewed"})


def post_idempotency_key(request: PublishRequest, account: str, content_sha256: str) -> str:
    """The key of this account's post: the caller's key (`KEY:account`) or content + account + caption + mode."""
    if request.idempotency_key:
        return f"{request.idempotency_key}:{account}"
    return default_idempotency_key(content_sha256, account, request.caption, request.mode)


def unfetched_idempotency_key(request: PublishRequest, account: str) -> str:
    """The key recording a request for `account` whose source was never fetched (no content hash yet)."""
    canonical = json.dumps(
        {"account": account, "caption": request.caption, "idempotency_key": request.idempotency_key,
         "mode": str(request.mode), "source": request.source},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return UNFETCHED_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def stored_request(options: dict[str, Any], events: Sequence[PostEvent]) -> dict[str, Any]:
    """The request (as JSON, without `accounts`) of the post's latest attempt.

    The post's options hold the request it was created with; an attempt made later with other
    fields (a re-run after a fix, a deferral) records its own in an event, and the latest wins.
    """
    for event in reversed(events):
        if event.kind in REQUEST_EVENT_KINDS and isinstance((event.data or {}).get("request"), dict):
            return dict(event.data["request"])
    return dict(options.get("request") or {})


def request_json(request: PublishRequest) -> dict[str, Any]:
    """A request as stored with a post: JSON, without the accounts (a post is for one account)."""
    return request.model_dump(mode="json", exclude={"accounts"})
