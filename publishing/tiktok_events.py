"""TikTok's webhooks into the ledger, without Prefect: accept a delivery, then apply its event.

    stored, event, fresh = accept_delivery(services, body, headers.get("TikTok-Signature"))  # then answer 200
    outcome = apply_stored(services, stored)      # once per event: the ledger changes, or why not
    apply_pending(services)                       # after a restart: what was stored but not applied

`accept_delivery` verifies TikTok's signature with the app's client secret, parses the body and stores
the event in the ledger under its dedupe key before the receiver answers: TikTok delivers at least
once and redelivers for 72 h, so a second delivery of the same event is recognised and applied no
more. Applying turns a Content Posting event into the status TikTok's status/fetch would have
answered and records it the way reconciliation does (`publishing.maintenance.apply_status`), so a
post settled by polling first, or by a duplicate, ends the same: events that arrive out of order
(publicly_available before complete) or late (after polling settled the post) change nothing that
is already right. `authorization.removed` marks the account needs-reconnect at once.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger import (
    AccountNotFound,
    AccountStatus,
    DuplicatePost,
    IllegalTransition,
    Post,
    PostNotFound,
    PostState,
    ReceivedEvent,
)
from publishing.maintenance import apply_status
from publishing.posting import PULL_INIT_LOST
from publishing.services import Services
from tiktok import PublishStatus, WebhookEvent, WebhookEventType, parse_webhook, verify_webhook

_LOG = logging.getLogger(__name__)

#: authorization.removed `reason` codes (TikTok's webhooks-events page).
REMOVAL_REASONS = {
    "0": "unknown reason",
    "1": "the user disconnected the app in TikTok",
    "2": "the user deleted their TikTok account",
    "3": "the user's age changed",
    "4": "the account was banned",
    "5": "the developer revoked the authorization",
}

#: The status/fetch answer each Content Posting event stands for.
_STATUS_OF = {
    WebhookEventType.PUBLISH_COMPLETE: "PUBLISH_COMPLETE",
    WebhookEventType.PUBLISH_FAILED: "FAILED",
    WebhookEventType.INBOX_DELIVERED: "SEND_TO_USER_INBOX",
    WebhookEventType.PUBLICLY_AVAILABLE: "PUBLISH_COMPLETE",
}


#: A post in one of these keeps what TikTok said first (by polling or an earlier event).
_FINAL_STATES = frozenset({PostState.published, PostState.failed, PostState.discarded})


@dataclass(frozen=True)
class EventOutcome:
    """What applying one event did: `summary` is the one line stored with the event and logged."""

    summary: str
    changed: bool = False
    post_id: int | None = None
    account_name: str | None = None


def accept_delivery(services: Services, body: bytes, signature: str | None, *,
                    now: datetime | None = None) -> tuple[ReceivedEvent, WebhookEvent, bool]:
    """Verify, parse and store one delivery; (the stored event, the event, True if first seen).

    Raises `tiktok.WebhookRejected` (the receiver answers 4xx and stores nothing) for a missing,
    forged or stale signature or a body that breaks TikTok's format.
    """
    secret = services.settings.client_secret.get_secret_value()
    verify_webhook(signature, body, secret, now=now or datetime.now(UTC))
    event = parse_webhook(body)
    stored, fresh = services.ledger.record_received_event(
        event.key, event=event.event, user_openid=event.user_openid, publish_id=event.publish_id,
        body=body.decode("utf-8"))
    return stored, event, fresh


def apply_stored(services: Services, stored: ReceivedEvent) -> EventOutcome:
    """Apply a stored event (unless it was applied already) and record what it did."""
    if stored.applied_at is not None:
        return EventOutcome(f"already applied: {stored.outcome}")
    outcome = apply_event(services, parse_webhook(stored.body.encode("utf-8")))
    services.ledger.mark_received_event_applied(stored.id, outcome.summary)
    _LOG.info("TikTok %s for %s: %s", stored.event, stored.publish_id or stored.user_openid, outcome.summary)
    return outcome


#: Pending events read from the ledger at a time by `apply_pending`.
PENDING_BATCH = 100


def apply_pending(services: Services) -> list[EventOutcome]:
    """Apply what was stored but not applied (a receiver stopped between its answer and the ledger),
    oldest first, however many there are."""
    outcomes: list[EventOutcome] = []
    while batch := services.ledger.received_events(pending_only=True, limit=PENDING_BATCH):
        outcomes += [apply_stored(services, stored) for stored in batch]  # each leaves the pending ones
        if len(batch) < PENDING_BATCH:
            break
    return outcomes


def apply_event(services: Services, event: WebhookEvent) -> EventOutcome:
    """Record in the ledger what `event` says; never raises for an event that does not apply."""
    if event.client_key != services.settings.client_key:
        return EventOutcome(f"ignored: for client_key {event.client_key!r}, not this app's")
    kind = event.kind
    if kind is None:
        return EventOutcome(f"ignored: event {event.event!r} is not one this pipeline handles")
    if kind is WebhookEventType.AUTHORIZATION_REMOVED:
        return _authorization_removed(services, event)
    if not event.publish_id:
        return EventOutcome(f"ignored: {event.event} without a publish_id")
    try:
        post = services.ledger.get_post_by_publish_id(event.publish_id)
    except PostNotFound:
        adopted = _adopted(services, event, kind)
        if isinstance(adopted, str):
            return EventOutcome(adopted)
        post = adopted
    account = services.ledger.get_account(post.account_name)
    if account.open_id != event.user_openid:
        return EventOutcome(f"ignored: post {post.id} belongs to another TikTok user than {event.user_openid}",
                            post_id=post.id)
    if kind is WebhookEventType.NO_LONGER_PUBLICLY_AVAILABLE:
        services.ledger.note(post, "no_longer_public", "TikTok: the post is no longer publicly available",
                             data={"post_id": event.post_id})
        return EventOutcome(f"post {post.id}: noted that it is no longer publicly available", True, post.id,
                            post.account_name)
    if kind is WebhookEventType.PUBLICLY_AVAILABLE and post.state is PostState.published:
        return _public_post_id(services, post, event, account.username)
    return _settle(services, post, event, kind, account.username)


#: Events that only a post which received its media sends: an init whose answer was lost but which
#: never got bytes (FILE_UPLOAD's orphans) cannot send them, so they name a post TikTok pulled.
_ADOPTING = frozenset({WebhookEventType.PUBLISH_COMPLETE, WebhookEventType.INBOX_DELIVERED,
                       WebhookEventType.PUBLICLY_AVAILABLE})


def _adopted(services: Services, event: WebhookEvent, kind: WebhookEventType) -> Post | str:
    """The post an unknown publish_id belongs to, when exactly one is possible: the creator's one
    unconfirmed post whose (PULL_FROM_URL) init's answer was lost. Else why it is ignored."""
    unknown = f"ignored: no post has publish_id {event.publish_id}"
    if kind not in _ADOPTING:
        return unknown
    try:
        account = services.ledger.get_account_by_open_id(event.user_openid)
    except AccountNotFound:
        return unknown
    waiting = [p for p in services.ledger.list_posts(account_name=account.name, states=[PostState.unconfirmed])
               if p.publish_id is None and (p.error_message or "").startswith(PULL_INIT_LOST)]
    if len(waiting) != 1:
        return unknown + (f" ({len(waiting)} unconfirmed posts of {account.name} could be it: resolve them with "
                          "`tiktok-pipeline posts resolve`)" if waiting else "")
    try:
        return services.ledger.adopt_publish_id(waiting[0], event.publish_id, message=(
            f"TikTok's {event.event} names publish_id {event.publish_id}: the init whose answer was lost"),
            data={"event": event.event})
    except (IllegalTransition, DuplicatePost):  # settled or adopted meanwhile
        return unknown


def _settle(services: Services, post: Post, event: WebhookEvent, kind: WebhookEventType,
            username: str | None) -> EventOutcome:
    post_ids = [int(event.post_id)] if kind is WebhookEventType.PUBLICLY_AVAILABLE and (event.post_id or "").isdigit() else []
    status = PublishStatus(status=_STATUS_OF[kind], fail_reason=event.reason if kind is WebhookEventType.PUBLISH_FAILED
                           else None, publicaly_available_post_id=post_ids)
    wanted = {"PUBLISH_COMPLETE": PostState.published, "FAILED": PostState.failed,
              "SEND_TO_USER_INBOX": PostState.sent_to_inbox}[status.status]
    if post.state is wanted or (post.state is PostState.published and wanted is PostState.sent_to_inbox):
        return EventOutcome(f"post {post.id} is {post.state} already", post_id=post.id, account_name=post.account_name)
    if post.state in _FINAL_STATES:
        # TikTok said otherwise before (polling recorded it): keep the first answer, and the evidence.
        services.ledger.note(post, "conflicting_webhook", f"TikTok's {event.event} arrived for a post that is {post.state}",
                             data={"event": event.event, "reason": event.reason})
        return EventOutcome(f"ignored: post {post.id} is {post.state}, {event.event} noted", True, post.id,
                            post.account_name)
    try:
        settled = apply_status(services, post, status, username, services.ledger.now() - post.updated_at)
    except IllegalTransition:  # a poller or another delivery recorded the outcome meanwhile
        settled = services.ledger.get_post(post.id)
    if kind is WebhookEventType.PUBLICLY_AVAILABLE and settled.state is PostState.published and post_ids \
            and event.post_id not in settled.post_ids:
        # Published meanwhile by the complete event (or a poller) without the id: add it now.
        return _public_post_id(services, settled, event, username)
    changed = settled.state is not post.state
    return EventOutcome(f"post {post.id}: {post.state} -> {settled.state}" if changed else
                        f"post {post.id} stays {settled.state}", changed, post.id, post.account_name)


def _public_post_id(services: Services, post: Post, event: WebhookEvent, username: str | None) -> EventOutcome:
    if not event.post_id or event.post_id in post.post_ids:
        return EventOutcome(f"post {post.id} has its public post id already", post_id=post.id,
                            account_name=post.account_name)
    url = f"https://www.tiktok.com/@{username}/video/{event.post_id}" if username else None
    services.ledger.add_public_post_ids(post, [event.post_id], share_url=url,
                                        message=f"TikTok: publicly available as post {event.post_id}")
    return EventOutcome(f"post {post.id}: publicly available as {event.post_id}", True, post.id, post.account_name)


def _authorization_removed(services: Services, event: WebhookEvent) -> EventOutcome:
    try:
        account = services.ledger.get_account_by_open_id(event.user_openid)
    except AccountNotFound:
        return EventOutcome(f"ignored: no connected account is TikTok user {event.user_openid}")
    if account.status is AccountStatus.needs_reconnect:
        return EventOutcome(f"account {account.name} needs reconnecting already", account_name=account.name)
    why = REMOVAL_REASONS.get(event.reason or "0", f"reason {event.reason}")
    services.ledger.mark_needs_reconnect(account.name, f"TikTok removed the app's authorization: {why}")
    return EventOutcome(f"account {account.name} needs reconnecting: {why}", True, account_name=account.name)


#: Prefect event names: `tiktok.webhook.` + TikTok's event name (`tiktok.webhook.post.publish.complete`).
EVENT_PREFIX = "tiktok.webhook."
_EVENT_NAMESPACE = uuid.UUID("6f1d3c2e-8a0b-4c55-9f3e-2b7d1a4e9c10")


def prefect_event(stored: ReceivedEvent, outcome: EventOutcome) -> dict[str, Any]:
    """Keyword arguments of `prefect.events.emit_event` for one applied TikTok webhook.

    The resource is the post (`tiktok.post.<ledger id>`, as the outcome events of a publish run name
    it) or, for authorization.removed, the account; the id derives from the dedupe key, so a
    redelivery TikTok makes is one event in Prefect too."""
    if outcome.post_id is not None:
        resource = {"prefect.resource.id": f"tiktok.post.{outcome.post_id}",
                    "prefect.resource.name": f"{outcome.account_name} post {outcome.post_id}"}
    elif outcome.account_name is not None:
        resource = {"prefect.resource.id": f"tiktok.account.{outcome.account_name}",
                    "prefect.resource.name": outcome.account_name}
    else:  # applied to nothing of ours (ignored): still visible, under the TikTok user it names
        resource = {"prefect.resource.id": f"tiktok.user.{stored.user_openid}"}
    resource["tiktok.changed"] = str(outcome.changed).lower()
    if stored.publish_id:
        resource["tiktok.publish_id"] = stored.publish_id
    related = ([{"prefect.resource.id": f"tiktok.account.{outcome.account_name}",
                 "prefect.resource.role": "tiktok-account", "prefect.resource.name": outcome.account_name}]
               if outcome.account_name is not None and outcome.post_id is not None else [])
    return {
        "event": EVENT_PREFIX + stored.event,
        "resource": resource,
        "related": related,
        "payload": {"event": stored.event, "publish_id": stored.publish_id, "user_openid": stored.user_openid,
                    "outcome": outcome.summary, "changed": outcome.changed, "received_event_id": stored.id},
        "occurred": stored.received_at,
        "id": uuid.uuid5(_EVENT_NAMESPACE, stored.key),
    }
