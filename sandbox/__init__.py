"""A local TikTok: Content Posting API, Login Kit OAuth, authorize page and upload host on one port.

It enforces what TikTok enforces (token expiry and rotation, scopes, rate limits, creator caps,
unaudited-app rules, chunk plans, ffprobe media checks, status progression), sends TikTok's webhooks,
and adds control endpoints under `/_sandbox/` for tests: clock, faults, resets, inspection of every
post received and every webhook sent.

    from sandbox import SandboxConfig, serve

    with serve(SandboxConfig(processing_delay=0)) as sandbox:
        print(sandbox.base_url, sandbox.env())

Beside it, a local S3 (`MotoServer`, moto in server mode; the `local` extra) and the few helpers the
command line and `make up` use to run either as a server of its own.

It imports no other core package on purpose: it re-states TikTok's rules from TikTok's docs, so a
mistake in the `tiktok` client cannot hide behind constants the two would share.

Public surface, by group:
- in-process server: `serve` -> `SandboxHandle` (base_url, env(), control endpoints: clock, faults,
  resets, posts), `SandboxConfig`, `SandboxCreator`, `default_creators`, `load_config` (YAML/JSON file).
- a server of its own (CLI, `make up`): `create_app`, `bind_socket`, `uvicorn_server`, `base_url_of`,
  `free_port`, `pipeline_env` (the TIKTOK_PIPELINE_* variables pointing the pipeline at it).
- local S3: `MotoServer`, `FAKE_AWS_ENV`.
- errors: `SandboxError`, the one error the sandbox raises to its caller (tree in `sandbox/_errors.py`).

Webhooks (`sandbox/_webhooks.py`), as TikTok sends them to the app's callback URL:
- settings (`SandboxConfig`): `webhook_url` (None, the default: nothing is sent; https, or http on
  loopback), `webhook_retry_delay` (0.2 s, doubling per retry), `webhook_max_attempts` (5; TikTok
  retries for up to 72 h instead), `webhook_timeout` (5 s per attempt). The CLI takes them from --config.
- events: post.publish.complete, .failed (`reason` = fail_reason), .inbox_delivered,
  .publicly_available (`post_id`), .no_longer_publicaly_available (sic) with `publish_id` and
  `publish_type` (DIRECT_PUBLISH / INBOX_SHARE) in `content`; authorization.removed (`reason` 5 after
  /v2/oauth/revoke/, or the code given to the deauthorize control). Body `{client_key, event,
  create_time, user_openid, content}` with `content` a JSON string; header
  `TikTok-Signature: t=<unix s>,s=<hex HMAC-SHA256(client_secret, "<t>." + raw body)>`, signed anew per
  attempt. While a callback URL is set, posts are processed without anyone polling, and each status
  change is sent within ~50 ms, in the background, one delivery at a time, retried until answered 200.
- control: `PUT /_sandbox/webhook` {"url"} / `DELETE` / `GET` (only later events are sent to a newly
  set URL); `GET /_sandbox/webhooks` (every event: body, raw_body, signature, attempts with time,
  status code or error, state pending | held | delivered | lost | failed); `POST /_sandbox/users/{user}/
  deauthorize` {"reason"} (the user removes the app: tokens end, authorization.removed);
  `POST /_sandbox/posts/{publish_id}/take_down` (a public post is taken down). `POST /_sandbox/reset`
  forgets every event and restores the startup callback URL. `SandboxHandle`: `set_webhook_url`,
  `webhooks`, `deauthorize`, `take_down`.
- faults: `add_fault("webhook", kind, event=None | name, times=... | probability=..., latency_ms=...)`
  with kind lost (never sent), duplicate (sent twice, both validly signed), late (first sent after
  latency_ms), out_of_order (held back and sent right after the next event; with latency_ms, after that
  long at the latest), bad_signature (signed with a wrong key), stale_signature (t an hour old). "*"
  faults never apply to webhooks.
- deliveries run on the app's event loop, started and stopped by its lifespan (`serve()`, the CLI, any
  uvicorn with lifespan on); stopping the sandbox abandons the deliveries not yet made.
"""

from sandbox._app import create_app
from sandbox._config import SandboxConfig, SandboxCreator, default_creators, load_config
from sandbox._errors import SandboxError
from sandbox._s3 import FAKE_AWS_ENV, MotoServer
from sandbox._server import SandboxHandle, base_url_of, bind_socket, free_port, pipeline_env, serve, uvicorn_server

__all__ = [
    "FAKE_AWS_ENV",
    "MotoServer",
    "SandboxConfig",
    "SandboxCreator",
    "SandboxError",
    "SandboxHandle",
    "base_url_of",
    "bind_socket",
    "create_app",
    "default_creators",
    "free_port",
    "load_config",
    "pipeline_env",
    "serve",
    "uvicorn_server",
]
