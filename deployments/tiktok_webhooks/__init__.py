"""The receiver of TikTok's webhooks: a small ASGI app in front of `publishing.tiktok_events`.

    app = receiver_app(services)       # POST /tiktok/webhooks, GET /healthz

It reads at most `tiktok.MAX_WEBHOOK_BODY_SIZE` bytes, has the delivery verified and stored by
`accept_delivery` (a refused one gets 401 or 400 and is not stored; a ledger that cannot store it
gets 503, so TikTok delivers it again), answers 200 at once and applies the event after the answer.
A duplicate is answered 200 and not applied again.
"""

from deployments.tiktok_webhooks._app import WEBHOOK_PATH, receiver_app

__all__ = ["WEBHOOK_PATH", "receiver_app"]
