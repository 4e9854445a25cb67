"""All mutable sandbox state in one object behind one lock, with TikTok's rules applied to it.

Methods are synchronous and short; the app calls them from the event loop. Slow work (ffprobe,
downloads, writing chunk bodies) happens in the app between calls, never under the lock.
"""

from __future__ import annotations

import itertools
import math
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from sandbox._config import SandboxConfig, SandboxCreator
from sandbox._errors import ApiRefusal, OAuthRefusal
from sandbox._media import MediaCheck
from sandbox._oauth import AccessToken, TokenBook, avatar_url, check_client, user_fields
from sandbox._posts import (
    UPLOAD_CONTENT_TYPES,
    FileUploadSource,
    InboxInitRequest,
    PhotoInitRequest,
    Post,
    VideoInitRequest,
    chunk_plan_problem,
    post_status,
)
from sandbox._webhooks import REASON_DEVELOPER_REVOKED, UNREPORTED, Notice, post_notices, removed_notice

DAY = 86_400.0
RATE_WINDOW = 60.0
UNAUDITED_USER_CAP = 5
CONTENT_RANGE_PATTERN = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
FIRST_POST_ID = 7_400_000_000_000_000_000


@dataclass(frozen=True)
class MediaJob:
    """Work a post needs before its status can settle: check an uploaded file, or pull and check URLs."""

    publish_id: str
    kind: str  # "check_upload" | "pull_video" | "pull_photos"
    path: Path
    urls: tuple[str, ...]
    max_duration_sec: int


@dataclass(frozen=True)
class ChunkAnswer:
    status_code: int
    content_range: str


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self._lock = threading.Lock()
        self._startup_config = config
        self._storage = Path(tempfile.mkdtemp(prefix="tiktok-sandbox-"))
        # Ids continue from the start time (ms × 1000) so a restarted sandbox never reissues an id a
        # persistent ledger has already seen (TikTok's publish_ids are unique for good).
        self._ids = itertools.count(int(time.time() * 1000) * 1000 + 1)
        self._clear(config)

    def _clear(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock_offset = 0.0
        self.tokens = TokenBook()
        self.posts: dict[str, Post] = {}
        self._uploads: dict[str, str] = {}  # upload_id -> publish_id
        self._calls: dict[tuple[str, str], deque[float]] = {}
        self._rate_limited: dict[str, int] = {}  # endpoint -> 429s answered (what a client should never see)
        self._reported: dict[str, tuple[str, bool]] = {}  # publish_id -> (status, public) last reported by webhook

    # --- lifecycle and clock ------------------------------------------------------------------------
    def reset(self, config: SandboxConfig | None = None) -> SandboxConfig:
        """Forget everything; run with `config` from now on (default: the startup config)."""
        with self._lock:
            self._clear(config or self._startup_config)
            for child in self._storage.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            return self.config

    def close(self) -> None:
        shutil.rmtree(self._storage, ignore_errors=True)

    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance_clock(self, seconds: float) -> float:
        with self._lock:
            self.clock_offset += seconds
            return self.now()

    # --- OAuth ----------------------------------------------------------------------------------------
    def authorize(self, query: Mapping[str, str]) -> str:
        with self._lock:
            return self.tokens.authorize(self.config, query, self.now())

    def token(self, form: Mapping[str, str]) -> dict[str, object]:
        with self._lock:
            check_client(self.config, form)
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                return self.tokens.exchange_code(self.config, form, self.now())
            if grant_type == "refresh_token":
                return self.tokens.rotate(self.config, form, self.now())
            raise OAuthRefusal(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def revoke(self, form: Mapping[str, str]) -> Notice | None:
        """Revoke the app's authorization; the authorization.removed event when one was live."""
        with self._lock:
            check_client(self.config, form)
            open_id = self.tokens.revoke(form.get("token", ""), self.now())
            return None if open_id is None else removed_notice(open_id, REASON_DEVELOPER_REVOKED)

    def deauthorize(self, user: str, reason: int) -> Notice | None:
        """Inspection: the user removes the app in TikTok (or TikTok removes the user); every token ends."""
        with self._lock:
            creator = self._creator_named(user)
            open_id = self.tokens.revoke_user(creator.open_id, self.now())
            return None if open_id is None else removed_notice(open_id, reason)

    def issue_test_token(self, user: str | None, scopes: list[str] | None) -> dict[str, object]:
        """Test shortcut: tokens as if `user` had approved `scopes` (default: all the app's scopes)."""
        with self._lock:
            creator = self._creator_named(user)
            granted = tuple(scopes if scopes is not None else self.config.scopes)
            refused = [s for s in granted if s not in self.config.scopes]
            if refused:
                raise OAuthRefusal(400, "invalid_scope", f"app is not approved for {','.join(refused)}")
            return self.tokens.issue(self.config, creator.open_id, granted, self.now())

    def _creator_named(self, user: str | None) -> SandboxCreator:
        creator = self.config.creator(user) if user else self.config.creators[0]
        if creator is None:
            raise OAuthRefusal(400, "invalid_request", f"{user!r} is not a configured test user")
        return creator

    def authenticate(self, authorization: str | None, endpoint: str, any_scope: tuple[str, ...]) -> AccessToken:
        """The caller's token once it is valid, carries one of `any_scope` and is under the rate limit."""
        with self._lock:
            now = self.now()
            token = self.tokens.bearer(authorization, now)
            if not set(any_scope) & set(token.scopes):
                raise ApiRefusal(
                    401, "scope_not_authorized", f"The user did not authorize the scope {' or '.join(any_scope)}."
                )
            limit = self.config.rate_limits.get(endpoint)
            if limit is not None:
                calls = self._calls.setdefault((token.token, endpoint), deque())
                while calls and calls[0] <= now - RATE_WINDOW:
                    calls.popleft()
                if len(calls) >= limit:
                    retry_after = max(1, math.ceil(calls[0] + RATE_WINDOW - now))
                    self._rate_limited[endpoint] = self._rate_limited.get(endpoint, 0) + 1
                    raise ApiRefusal(
                        429,
                        "rate_limit_exceeded",
                        f"{endpoint} allows {limit} requests per minute per token.",
                        headers={"Retry-After": str(retry_after)},
                    )
                calls.append(now)
            return token

    def user_info(self, token: AccessToken, fields: list[str], base_url: str = "") -> dict[str, object]:
        with self._lock:
            creator = self._creator(token.open_id)
            published = sum(
                1
                for p in self.posts.values()
                if p.open_id == creator.open_id and not p.known_failed and (p.mode == "direct" or p.user_published_at)
            )
            groups = user_fields(creator, published, base_url)
            user: dict[str, object] = {}
            for name in fields:
                scope = next((s for s, values in groups.items() if name in values), None)
                if scope is None:
                    raise ApiRefusal(400, "invalid_param", f"unknown field {name!r}")
                if scope not in token.scopes:
                    raise ApiRefusal(401, "scope_not_authorized", f"field {name} needs the scope {scope}")
                user[name] = groups[scope][name]
            return {"user": user}

    # --- creator rules --------------------------------------------------------------------------------
    def _creator(self, open_id: str) -> SandboxCreator:
        creator = self.config.creator(open_id)
        if creator is None:
            # The config was swapped by a reset after this token was issued.
            raise ApiRefusal(401, "access_token_invalid", "The user of this token no longer exists.")
        return creator

    def _recent(self, now: float) -> list[Post]:
        return [p for p in self.posts.values() if p.created_at > now - DAY]

    def _cannot_post(self, creator: SandboxCreator, now: float, *, direct: bool) -> ApiRefusal | None:
        """Why `creator` cannot start a post now (HTTP 403 refusals), in TikTok's order of importance."""
        if creator.banned_from_posting:
            return ApiRefusal(403, "spam_risk_user_banned_from_posting", "The user is banned from making new posts.")
        recent = self._recent(now)
        active = {p.open_id for p in recent}
        unaudited_cap = UNAUDITED_USER_CAP if self.config.unaudited else None
        caps = [c for c in (self.config.active_user_cap, unaudited_cap) if c is not None]
        if creator.open_id not in active and caps and len(active) >= min(caps):
            return ApiRefusal(403, "reached_active_user_cap", "The app reached its daily cap of active posting users.")
        mine = [p for p in recent if p.open_id == creator.open_id and not p.known_failed]
        if direct and sum(1 for p in mine if p.mode == "direct") >= creator.daily_post_cap:
            return ApiRefusal(403, "spam_risk_too_many_posts", "The user reached the daily post cap.")
        if not direct:
            pending = sum(1 for p in mine if p.mode == "inbox" and p.user_published_at is None)
            if pending >= self.config.inbox_pending_cap:
                return ApiRefusal(
                    403, "spam_risk_too_many_pending_share", "The user has too many pending inbox shares."
                )
        return None

    def creator_info(self, token: AccessToken, base_url: str = "") -> tuple[dict[str, object], ApiRefusal | None]:
        with self._lock:
            creator = self._creator(token.open_id)
            data: dict[str, object] = {
                "creator_avatar_url": avatar_url(creator, base_url),
                "creator_username": creator.username,
                "creator_nickname": creator.nickname or creator.username,
                "privacy_level_options": creator.privacy_level_options,
                "comment_disabled": creator.comment_disabled,
                "duet_disabled": creator.duet_disabled or creator.private_account,
                "stitch_disabled": creator.stitch_disabled or creator.private_account,
                "max_video_post_duration_sec": creator.max_video_post_duration_sec,
            }
            return data, self._cannot_post(creator, self.now(), direct=True)

    def _verified(self, url: str) -> bool:
        # Prefixes are https (or loopback http, see SandboxConfig), so a match also fixes the scheme.
        for prefix in self.config.verified_url_prefixes:
            # The prefix must end on a path boundary: "https://a.com" must not match "https://a.com.evil".
            boundary = url[len(prefix) : len(prefix) + 1]
            if url.startswith(prefix) and (prefix.endswith("/") or boundary in ("", "/", "?")):
                return True
        return False

    # --- inits ------------------------------------------------------------------------------------------
    def init_video(self, token: AccessToken, request: VideoInitRequest, base_url: str) -> dict[str, object]:
        _check_chunk_plan(request)
        with self._lock:
            now = self.now()
            creator = self._creator(token.open_id)
            refusal = self._cannot_post(creator, now, direct=True)
            if refusal:
                raise refusal
            applied = self._direct_privacy(creator, request.post_info.privacy_level)
            post_info = request.post_info.model_dump()
            return self._new_video(
                token, creator, request, base_url, mode="direct", privacy=applied, post_info=post_info
            )

    def _direct_privacy(self, creator: SandboxCreator, privacy: str) -> str:
        """The privacy TikTok applies to a direct post, or the 403 refusing it."""
        if self.config.unaudited and not creator.private_account:
            raise ApiRefusal(
                403,
                "unaudited_client_can_only_post_to_private_accounts",
                "Unaudited clients can only post to private accounts.",
            )
        if privacy not in creator.privacy_level_options:
            raise ApiRefusal(
                403,
                "privacy_level_option_mismatch",
                f"privacy_level {privacy} is not in {creator.privacy_level_options}.",
            )
        return "SELF_ONLY" if self.config.unaudited else privacy

    def init_inbox(self, token: AccessToken, request: InboxInitRequest, base_url: str) -> dict[str, object]:
        _check_chunk_plan(request)
        with self._lock:
            creator = self._creator(token.open_id)
            refusal = self._cannot_post(creator, self.now(), direct=False)
            if refusal:
                raise refusal
            return self._new_video(token, creator, request, base_url, mode="inbox", privacy=None, post_info=None)

    def _new_video(
        self,
        token: AccessToken,
        creator: SandboxCreator,
        request: VideoInitRequest | InboxInitRequest,
        base_url: str,
        *,
        mode: str,
        privacy: str | None,
        post_info: dict[str, object] | None,
    ) -> dict[str, object]:
        source = request.source_info
        now = self.now()
        number = next(self._ids)
        kind = "file" if isinstance(source, FileUploadSource) else "url"
        post = Post(
            publish_id=f"v_{'pub' if mode == 'direct' else 'inbox'}_{kind}~v2-1.{FIRST_POST_ID + number}",
            open_id=token.open_id,
            media_type="VIDEO",
            mode=mode,  # type: ignore[arg-type]
            source=source.source,
            post_info=post_info,
            privacy_level=privacy,
            created_at=now,
            post_id=FIRST_POST_ID + number,
            max_duration_sec=creator.max_video_post_duration_sec,
        )
        data: dict[str, object] = {"publish_id": post.publish_id}
        if isinstance(source, FileUploadSource):
            post.video_size, post.chunk_size = source.video_size, source.chunk_size
            post.total_chunk_count = source.total_chunk_count
            post.upload_id, post.upload_token = secrets.token_hex(16), secrets.token_urlsafe(24)
            post.upload_expires_at = now + self.config.upload_url_ttl
            post.file_path = self._storage / post.upload_id
            root = (self.config.public_base_url or base_url).rstrip("/")
            data["upload_url"] = f"{root}/upload/{post.upload_id}?upload_token={post.upload_token}"
            self._uploads[post.upload_id] = post.publish_id
        else:
            if not self._verified(source.video_url):
                raise ApiRefusal(
                    403, "url_ownership_unverified", "The video_url is not under a verified domain or prefix."
                )
            post.media_urls = [source.video_url]
        self.posts[post.publish_id] = post
        return data

    def init_photos(self, token: AccessToken, request: PhotoInitRequest) -> dict[str, object]:
        with self._lock:
            now = self.now()
            creator = self._creator(token.open_id)
            direct = request.post_mode == "DIRECT_POST"
            privacy = request.post_info.privacy_level
            if direct and privacy is None:
                raise ApiRefusal(400, "invalid_param", "post_info.privacy_level is required for DIRECT_POST")
            if request.source_info.photo_cover_index >= len(request.source_info.photo_images):
                raise ApiRefusal(400, "invalid_param", "photo_cover_index is outside photo_images")
            refusal = self._cannot_post(creator, now, direct=direct)
            if refusal:
                raise refusal
            applied = self._direct_privacy(creator, privacy) if direct and privacy else None
            unverified = [u for u in request.source_info.photo_images if not self._verified(u)]
            if unverified:
                raise ApiRefusal(403, "url_ownership_unverified", f"not under a verified prefix: {unverified}")
            number = next(self._ids)
            post = Post(
                publish_id=f"p_{'pub' if direct else 'inbox'}_url~v2.{FIRST_POST_ID + number}",
                open_id=token.open_id,
                media_type="PHOTO",
                mode="direct" if direct else "inbox",
                source="PULL_FROM_URL",
                post_info=request.post_info.model_dump(),
                privacy_level=applied,
                created_at=now,
                post_id=FIRST_POST_ID + number,
                max_duration_sec=creator.max_video_post_duration_sec,
                media_urls=list(request.source_info.photo_images),
                photo_cover_index=request.source_info.photo_cover_index,
            )
            self.posts[post.publish_id] = post
            return {"publish_id": post.publish_id}

    # --- upload host ------------------------------------------------------------------------------------
    def begin_chunk(
        self,
        upload_id: str,
        upload_token: str,
        content_range: str | None,
        content_length: str | None,
        content_type: str | None,
    ) -> tuple[Path, int, int]:
        """Where to write the chunk a PUT announces: (file, first, last), or the refusal to answer."""
        with self._lock:
            post = self._upload(upload_id, upload_token)
            assert post.video_size is not None and post.file_path is not None
            total = post.video_size
            held = _held_range(post)
            if (content_type or "").split(";")[0].strip().lower() not in UPLOAD_CONTENT_TYPES:
                raise ApiRefusal(400, "invalid_param", f"Content-Type must be one of {UPLOAD_CONTENT_TYPES}")
            match = CONTENT_RANGE_PATTERN.fullmatch((content_range or "").strip())
            if match is None:
                raise ApiRefusal(400, "invalid_param", "Content-Range must be 'bytes FIRST-LAST/TOTAL'")
            first, last, declared_total = (int(g) for g in match.groups())
            if declared_total != total or first > last or last >= total:
                raise ApiRefusal(
                    400, "invalid_param", f"Content-Range {content_range!r} does not fit video_size {total}"
                )
            if content_length is None or not content_length.isdigit() or int(content_length) != last - first + 1:
                raise ApiRefusal(400, "invalid_param", "Content-Length must equal the Content-Range length")
            if first < post.received_bytes and self.config.resent_chunks == "accept" and last == post.chunk_end(first):
                return post.file_path, first, last  # a chunk it holds: compared, not written (finish_resent_chunk)
            if first != post.received_bytes:
                raise ApiRefusal(
                    416,
                    "invalid_param",
                    f"expected the chunk starting at byte {post.received_bytes}",
                    headers={"Content-Range": held},
                )
            if last != post.chunk_end(first):
                raise ApiRefusal(
                    400, "invalid_param", f"the chunk starting at {first} must end at byte {post.chunk_end(first)}"
                )
            return post.file_path, first, last

    def holds(self, upload_id: str, upload_token: str, first: int) -> bool:
        """Whether the chunk starting at `first` was already received (a resend `begin_chunk` let through)."""
        with self._lock:
            return first < self._upload(upload_id, upload_token).received_bytes

    def resent_chunk(self, upload_id: str, upload_token: str) -> ChunkAnswer:
        """The answer to an identical re-sent chunk: 206 (201 once complete) with all the host holds."""
        with self._lock:
            post = self._upload(upload_id, upload_token)
            return ChunkAnswer(201 if post.upload_complete else 206, _held_range(post))

    def commit_chunk(self, upload_id: str, upload_token: str, first: int, last: int) -> ChunkAnswer:
        with self._lock:
            post = self._upload(upload_id, upload_token)
            assert post.video_size is not None
            if first != post.received_bytes:  # a concurrent PUT of the same chunk won the race
                held = _held_range(post)
                raise ApiRefusal(416, "invalid_param", "chunk already received", headers={"Content-Range": held})
            post.received_bytes = last + 1
            if post.upload_complete:
                post.transferred_at = self.now()
                return ChunkAnswer(201, _held_range(post))
            return ChunkAnswer(206, _held_range(post))

    def _upload(self, upload_id: str, upload_token: str) -> Post:
        publish_id = self._uploads.get(upload_id)
        post = self.posts.get(publish_id) if publish_id else None
        if post is None or not secrets.compare_digest(post.upload_token or "", upload_token):
            raise ApiRefusal(404, "invalid_param", "no such upload")
        assert post.upload_expires_at is not None
        if self.now() >= post.upload_expires_at:
            raise ApiRefusal(403, "invalid_param", "the upload URL expired; initialize a new upload")
        return post

    # --- processing ------------------------------------------------------------------------------------
    def media_job(self, publish_id: str) -> MediaJob | None:
        """What must still run before this post's status can settle (None: nothing)."""
        with self._lock:
            post = self.posts.get(publish_id)
            return None if post is None else self._media_job(post)

    def _media_job(self, post: Post) -> MediaJob | None:
        if post.check is not None or post.cancelled_at is not None:
            return None
        if post.source == "FILE_UPLOAD":
            if not post.upload_complete:
                return None
            assert post.file_path is not None
            kind, path = "check_upload", post.file_path
        else:
            kind = "pull_video" if post.media_type == "VIDEO" else "pull_photos"
            path = self._storage / f"pull-{post.post_id}"
        return MediaJob(post.publish_id, kind, path, tuple(post.media_urls), post.max_duration_sec)

    def unsettled(self) -> list[str]:
        """The posts whose media work can run now (what TikTok processes whether or not anyone polls)."""
        with self._lock:
            return [p.publish_id for p in self.posts.values() if self._media_job(p) is not None]

    # --- webhooks ---------------------------------------------------------------------------------------
    def status_notices(self) -> list[Notice]:
        """The webhook events of every status change since the last call (in the order posts were made)."""
        with self._lock:
            return self._status_notices()

    def _status_notices(self) -> list[Notice]:
        now = self.now()
        notices: list[Notice] = []
        for post in self.posts.values():
            data = post_status(post, now, self.config)
            after = (str(data["status"]), bool(data["publicaly_available_post_id"]))
            before = self._reported.get(post.publish_id, UNREPORTED)
            if after != before:
                self._reported[post.publish_id] = after
                notices.extend(post_notices(post, before, after, data.get("fail_reason")))
        return notices

    def set_webhook_url(self, url: str | None) -> SandboxConfig:
        """Register (None: remove) the app's callback URL. What happened before is not reported to it."""
        with self._lock:
            self._status_notices()  # the baseline: only changes from now on are events
            self.config = self.config.model_copy(update={"webhook_url": url})
            return self.config

    def record_check(self, publish_id: str, check: MediaCheck, downloaded_bytes: int | None = None) -> None:
        with self._lock:
            post = self.posts.get(publish_id)
            if post is None or post.check is not None or post.cancelled_at is not None:
                return
            post.check = check
            if downloaded_bytes is not None:
                post.downloaded_bytes = downloaded_bytes
                post.transferred_at = self.now()

    def _owned_post(self, token: AccessToken, publish_id: str) -> Post:
        post = self.posts.get(publish_id)
        if post is None:
            raise ApiRefusal(400, "invalid_publish_id", f"publish_id {publish_id!r} does not exist")
        if post.open_id != token.open_id:
            raise ApiRefusal(
                400, "token_not_authorized_for_specified_publish_id", "The publish_id belongs to another user."
            )
        return post

    def check_owner(self, token: AccessToken, publish_id: str) -> None:
        with self._lock:
            self._owned_post(token, publish_id)

    def status(self, token: AccessToken, publish_id: str) -> dict[str, object]:
        with self._lock:
            return post_status(self._owned_post(token, publish_id), self.now(), self.config)

    def cancel(self, token: AccessToken, publish_id: str) -> None:
        with self._lock:
            post = self._owned_post(token, publish_id)
            status = post_status(post, self.now(), self.config)["status"]
            if post.source != "PULL_FROM_URL" or status != "PROCESSING_DOWNLOAD":
                reason = f"a {post.source} post in {status} cannot be cancelled"
                raise ApiRefusal(400, "publish_not_cancellable", reason)
            post.cancelled_at = self.now()

    def publish_from_inbox(self, publish_id: str, privacy_level: str) -> dict[str, object]:
        """Inspection: the creator opens the draft in the app and posts it."""
        with self._lock:
            post = self.posts.get(publish_id)
            if post is None:
                raise ApiRefusal(404, "invalid_publish_id", f"publish_id {publish_id!r} does not exist")
            status = post_status(post, self.now(), self.config)["status"]
            if status != "SEND_TO_USER_INBOX":
                reason = f"only SEND_TO_USER_INBOX drafts can be posted, this one is {status}"
                raise ApiRefusal(409, "invalid_param", reason)
            post.user_published_at = self.now()
            post.privacy_level = privacy_level
            return self._describe(post)

    def take_down(self, publish_id: str) -> dict[str, object]:
        """Inspection: TikTok takes a publicly available post down (its post id is no longer listed)."""
        with self._lock:
            post = self.posts.get(publish_id)
            if post is None:
                raise ApiRefusal(404, "invalid_publish_id", f"publish_id {publish_id!r} does not exist")
            if not post_status(post, self.now(), self.config)["publicaly_available_post_id"]:
                raise ApiRefusal(409, "invalid_param", "only a publicly available post can be taken down")
            post.taken_down_at = self.now()
            return self._describe(post)

    # --- inspection -------------------------------------------------------------------------------------
    def describe_posts(self) -> list[dict[str, object]]:
        with self._lock:
            return [self._describe(p) for p in sorted(self.posts.values(), key=lambda p: p.post_id)]

    def _describe(self, post: Post) -> dict[str, object]:
        creator = self.config.creator(post.open_id)
        return {
            "publish_id": post.publish_id,
            "open_id": post.open_id,
            "username": creator.username if creator else None,
            "media_type": post.media_type,
            "mode": post.mode,
            "source": post.source,
            "post_info": post.post_info,
            "privacy_level": post.privacy_level,
            "video_size": post.video_size,
            "chunk_size": post.chunk_size,
            "total_chunk_count": post.total_chunk_count,
            "received_bytes": post.received_bytes,
            "downloaded_bytes": post.downloaded_bytes,
            "media_urls": post.media_urls,
            "photo_cover_index": post.photo_cover_index,
            "created_at": post.created_at,
            "transferred_at": post.transferred_at,
            "cancelled_at": post.cancelled_at,
            "user_published_at": post.user_published_at,
            "taken_down_at": post.taken_down_at,
            "check": post.check.model_dump() if post.check else None,
            **post_status(post, self.now(), self.config),
        }

    def issued_secrets(self) -> dict[str, list[str]]:
        """Every credential the sandbox issued or received: tokens, OAuth codes, PKCE verifiers, upload
        tokens, and the app's client secret. Tests scan what the pipeline stores and prints for them."""
        with self._lock:
            return {
                **self.tokens.issued_secrets(),
                "upload_tokens": [p.upload_token for p in self.posts.values() if p.upload_token],
                "client_secrets": [self.config.client_secret],
            }

    def describe(self) -> dict[str, object]:
        with self._lock:
            now = self.now()
            return {
                "now": now,
                "clock_offset": self.clock_offset,
                "config": self.config.model_dump(),
                "storage_dir": str(self._storage),
                "posts": len(self.posts),
                "active_access_tokens": sum(
                    1 for t in self.tokens.access.values() if not t.revoked and now < t.expires_at
                ),
                "valid_refresh_tokens": sum(
                    1 for t in self.tokens.refresh.values() if t.valid and now < t.expires_at
                ),
                "rate_limit_calls": {
                    f"{endpoint}:{token[:12]}": sum(1 for t in calls if t > now - RATE_WINDOW)
                    for (token, endpoint), calls in self._calls.items()
                },
                "rate_limited": dict(self._rate_limited),
            }


def _held_range(post: Post) -> str:
    if post.received_bytes == 0:
        return f"bytes */{post.video_size}"
    return f"bytes 0-{post.received_bytes - 1}/{post.video_size}"


def _check_chunk_plan(request: VideoInitRequest | InboxInitRequest) -> None:
    source = request.source_info
    if isinstance(source, FileUploadSource):
        problem = chunk_plan_problem(source.video_size, source.chunk_size, source.total_chunk_count)
        if problem:
            raise ApiRefusal(400, "invalid_param", problem)
