"""Names of the emulated endpoints: the routes, the rate limits and fault injection all use them.

`WEBHOOK` names the one endpoint the sandbox calls instead of serving: the app's callback URL.
"""

from __future__ import annotations

#: name -> (method, path) on the one sandbox host.
ENDPOINTS: dict[str, tuple[str, str]] = {
    "authorize": ("GET", "/v2/auth/authorize/"),
    "oauth_token": ("POST", "/v2/oauth/token/"),
    "oauth_revoke": ("POST", "/v2/oauth/revoke/"),
    "user_info": ("GET", "/v2/user/info/"),
    "creator_info": ("POST", "/v2/post/publish/creator_info/query/"),
    "video_init": ("POST", "/v2/post/publish/video/init/"),
    "inbox_init": ("POST", "/v2/post/publish/inbox/video/init/"),
    "content_init": ("POST", "/v2/post/publish/content/init/"),
    "status_fetch": ("POST", "/v2/post/publish/status/fetch/"),
    "cancel": ("POST", "/v2/post/publish/cancel/"),
    "upload": ("PUT", "/upload/{upload_id}"),
}
UPLOAD_PREFIX = "/upload/"
OAUTH_ENDPOINTS = ("authorize", "oauth_token", "oauth_revoke")

#: Fault-injection name of the webhook deliveries to the app's callback URL (not matched by "*").
WEBHOOK = "webhook"
#: TikTok's webhook events the sandbox sends, spelled as TikTok spells them ("publicaly" sic).
WEBHOOK_EVENTS = (
    "post.publish.complete",
    "post.publish.failed",
    "post.publish.inbox_delivered",
    "post.publish.publicly_available",
    "post.publish.no_longer_publicaly_available",
    "authorization.removed",
)


def endpoint_of(method: str, path: str) -> str | None:
    if method == "PUT" and path.startswith(UPLOAD_PREFIX):
        return "upload"
    for name, (route_method, route_path) in ENDPOINTS.items():
        if method == route_method and path == route_path:
            return name
    return None


def path_of(name: str) -> str:
    return ENDPOINTS[name][1]
