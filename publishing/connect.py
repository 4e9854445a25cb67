"""Connect a TikTok account (Login Kit OAuth with a one-shot localhost redirect receiver), or remove one.

The authorize URL is printed (and opened by whatever `open_url` the caller passes); the redirect
lands on the local port of `redirect_uri`, where `state` is checked and the code is exchanged with
the PKCE verifier. The account, with its tokens encrypted, is stored in the ledger.

Everything that can be checked is checked before the exchange starts (`check_connect_input`): the
account name (`../evil` is refused before the authorize page is shown or the port is bound), the
redirect URI and the timeout. What can go wrong afterwards is a typed error too:

    PipelineError (tiktok_pipeline.errors)
    ├── AccountNameInvalid        final   not a name the ledger takes (publishing/_names.py)
    └── ConnectFailed             final   the account could not be connected
        ├── ConnectInputInvalid   final   the redirect URI is not a localhost one, the timeout is unusable
        ├── RedirectPortBusy      final   another program listens on the redirect URI's port
        └── RedirectTimedOut      final   no redirect arrived within the timeout

Removing revokes the app's authorization at TikTok (best effort) and then disconnects the account
in the ledger, which keeps its posts' history (`Ledger.remove_account`).
"""

from __future__ import annotations

import errno
import http.server
import math
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ledger import Account, AccountStatus, EncryptionKeyInvalid, EncryptionKeyMissing, Ledger, PostState
from publishing._names import AccountNameInvalid, check_account_name
from publishing.services import grant_from, refresher
from tiktok import OAuthClient, TikTokClient, TikTokError, parse_callback
from tiktok_pipeline.errors import PipelineError
from tiktok_pipeline.settings import Settings

__all__ = [
    "UNFINISHED_STATES", "AccountNameInvalid", "ConnectFailed", "ConnectInputInvalid", "RedirectPortBusy",
    "RedirectTimedOut", "Removal", "check_account_name", "check_connect_input", "connect_account", "remove_account",
    "revoke_at_tiktok",
]  # fmt: skip

_PAGE = b"<html><body><h1>TikTok account connected</h1><p>You can close this tab.</p></body></html>"

#: The longest wait for the redirect (a day): a longer one is a mistake, and `inf` cannot be waited for.
MAX_TIMEOUT = 86_400.0


class ConnectFailed(PipelineError):
    """The account could not be connected (nothing was stored)."""


class ConnectInputInvalid(ConnectFailed):
    """The redirect URI or the timeout cannot work: change the setting or the option."""


class RedirectPortBusy(ConnectFailed):
    """Another program listens on the redirect URI's port, so TikTok's redirect could not be received."""


class RedirectTimedOut(ConnectFailed):
    """No redirect reached the redirect URI in time (the authorize page was not approved, or elsewhere)."""


class _CallbackServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


def _redirect_port(redirect_uri: str) -> int:
    """The local port of a `http://localhost:PORT/...` redirect URI; ConnectInputInvalid for any other URI."""
    parts = urlsplit(redirect_uri)
    try:
        port = parts.port
    except ValueError:  # a port that is not a number or beyond 65535
        port = None
    if parts.scheme != "http" or parts.hostname not in ("localhost", "127.0.0.1") or not port:
        raise ConnectInputInvalid(
            f"redirect_uri {redirect_uri!r} is not http://localhost:PORT/...: set TIKTOK_PIPELINE_REDIRECT_URI "
            "to the localhost redirect registered for your desktop app",
            detail={"redirect_uri": redirect_uri},
        )
    return port


def check_connect_input(settings: Settings, name: str, timeout: float) -> None:
    """What `connect_account` checks before it binds a port or shows the authorize page."""
    check_account_name(name)
    if not (isinstance(timeout, int | float) and math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        raise ConnectInputInvalid(
            f"the timeout for the OAuth redirect must be more than 0 and at most {MAX_TIMEOUT:.0f} seconds, not {timeout!r}",
            detail={"timeout": repr(timeout)},
        )
    _redirect_port(settings.redirect_uri)


def _receiver(redirect_uri: str) -> tuple[_CallbackServer, "queue.Queue[str]"]:
    port = _redirect_port(redirect_uri)
    parts = urlsplit(redirect_uri)
    received: queue.Queue[str] = queue.Queue()
    path = parts.path or "/"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            if urlsplit(self.path).path.rstrip("/") != path.rstrip("/"):
                self.send_error(404)
                return
            received.put(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(_PAGE)

        def log_message(self, *args: object) -> None:
            return None

    try:
        return _CallbackServer(("127.0.0.1", port), Handler), received
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise RedirectPortBusy(
                f"port {port} of the redirect URI {redirect_uri} is in use by another program (another "
                "`accounts connect`?): stop it and connect again, or register another localhost redirect with "
                "TikTok and set TIKTOK_PIPELINE_REDIRECT_URI to it",
                detail={"port": port},
            ) from None
        raise ConnectFailed(f"cannot receive the OAuth redirect on port {port} of {redirect_uri}: {exc.strerror or exc}",
                            detail={"port": port, "errno": exc.errno}) from None


def connect_account(
    settings: Settings,
    ledger: Ledger,
    name: str,
    open_url: Callable[[str], None],
    *,
    extra_params: Mapping[str, str] | None = None,
    timeout: float = 300.0,
) -> Account:
    """Run the OAuth dance for `name` and store the account. `open_url` shows the authorize page.

    The name, the redirect URI and the timeout are checked first (`check_connect_input`): nothing is
    bound or shown for a request that cannot succeed. Waits at most `timeout` seconds for the redirect.
    """
    check_connect_input(settings, name, timeout)
    server, received = _receiver(settings.redirect_uri)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with OAuthClient(settings) as oauth:
            request = oauth.authorization_request(extra_params=extra_params)
            open_url(request.url)
            try:
                callback_path = received.get(timeout=timeout)
            except queue.Empty:
                raise RedirectTimedOut(
                    f"no OAuth redirect reached {settings.redirect_uri} within {timeout:g} s: approve the app on the "
                    "authorize page within that time, then connect again",
                    detail={"timeout": timeout},
                ) from None
            callback = parse_callback(urlsplit(callback_path).query, expected_state=request.state)
            tokens = oauth.exchange_code(callback.code, code_verifier=request.code_verifier)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    with TikTokClient(tokens.access_token, settings, account_key=tokens.open_id) as client:
        user = client.user_info()
        username, nickname = user.username, user.display_name
        if not username and "video.publish" in tokens.scopes:
            # `username` needs the user.info.profile scope; creator_info tells it with video.publish,
            # unless the creator cannot post right now (caps, ban): the account is stored all the same.
            try:
                creator = client.creator_info()
                username, nickname = creator.creator_username, nickname or creator.creator_nickname
            except TikTokError:
                pass
    return ledger.upsert_account(name, grant_from(tokens), username=username, nickname=nickname)


#: Posts not ended yet (held drafts, queued, uploads and TikTok's processing): without the account's token
#: the pipeline cannot take them further or learn how they end. (sent_to_inbox: the creator's inbox has it.)
UNFINISHED_STATES = frozenset({
    PostState.queued, PostState.media_ready, PostState.initialized, PostState.uploaded, PostState.processing,
    PostState.unconfirmed,
})  # fmt: skip


@dataclass(frozen=True)
class Removal:
    account: Account
    removed_now: bool  # False: it had been removed before
    revoked: bool  # TikTok accepted the revocation of the app's authorization
    revoke_problem: str | None  # why it was not revoked (None when it was)
    unfinished_posts: int  # posts of the account that will not go further unless it is connected again


def revoke_at_tiktok(settings: Settings, ledger: Ledger, account: Account) -> str | None:
    """Revoke the app's authorization for the account (best effort); None when TikTok accepted, else why not."""
    if account.status is not AccountStatus.active:
        return f"not revoked: TikTok already refused its token ({account.status_reason or account.status.value})"
    try:
        token, _ = ledger.ensure_fresh_token(account.name, refresher(settings))
        with OAuthClient(settings) as oauth:
            oauth.revoke(token)
    except (EncryptionKeyMissing, EncryptionKeyInvalid):
        raise  # fixable here, and the token could not be revoked later: remove nothing
    except PipelineError as exc:  # best effort: the account is removed here whatever TikTok answers
        return (f"TikTok did not confirm the revocation ({type(exc).__name__}: {exc}); remove the app from the "
                "creator's TikTok settings (apps with access to the account) to be sure")
    return None


def remove_account(settings: Settings, ledger: Ledger, name: str) -> Removal:
    """Revoke the account's authorization at TikTok (best effort), then remove it from the ledger."""
    account = ledger.get_account(name)
    if account.removed_at is not None:
        return Removal(account, removed_now=False, revoked=False, revoke_problem=None, unfinished_posts=0)
    problem = revoke_at_tiktok(settings, ledger, account)
    unfinished = len(ledger.list_posts(account_name=name, states=sorted(UNFINISHED_STATES)))
    removed, now = ledger.remove_account(name)
    return Removal(removed, removed_now=now, revoked=problem is None, revoke_problem=problem, unfinished_posts=unfinished)
