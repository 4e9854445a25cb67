"""`tiktok-pipeline accounts ...`: connect TikTok accounts and see their health."""

from __future__ import annotations

import webbrowser
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from deployments.cli._common import EXIT_FAILED, EXIT_USAGE, console, fail, pipeline_errors

if TYPE_CHECKING:
    from ledger import Ledger

accounts_app = typer.Typer(name="accounts", help="Connect TikTok accounts and check their tokens and caps.", no_args_is_help=True)


@accounts_app.command()
def connect(
    name: str = typer.Argument(..., help="A short name for this account, used by --account"),
    open_browser: bool = typer.Option(True, "--open/--no-open", help="Open the authorize page in a browser"),
    timeout: float = typer.Option(300.0, help="Seconds to wait for the redirect"),
) -> None:
    """Authorize a TikTok account (Login Kit OAuth) and store it with its tokens encrypted.

    A name the ledger would refuse, a redirect URI that is not a localhost one or an unusable timeout
    exit 2 before the authorize page is shown or the redirect port is bound.
    """
    from publishing.connect import check_account_name, check_connect_input, connect_account

    with pipeline_errors(exit_code=EXIT_USAGE):
        check_account_name(name)  # first: `../evil` is refused before anything is read or bound
    from tasks import runtime

    with pipeline_errors(exit_code=EXIT_USAGE):
        settings = runtime.settings()
        check_connect_input(settings, name, timeout)

    def show(url: str) -> None:
        console.print(f"Open this URL to authorize the app, then come back here:\n{url}", soft_wrap=True)
        if open_browser:
            webbrowser.open(url)

    with pipeline_errors():
        book = runtime.ledger(settings)
        account = connect_account(settings, book, name, show, timeout=timeout)
        console.print(f"connected [bold]{account.name}[/]: {account.nickname} (@{account.username}), "
                      f"scopes {', '.join(account.scopes)}")
        show_form_update(book)


@accounts_app.command()
def remove(
    name: str = typer.Argument(..., help="The account to remove"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation"),
) -> None:
    """Disconnect an account: revoke the app's access at TikTok and stop offering it.

    Its posts stay in the ledger (`posts list`, `accounts export`); `accounts connect NAME` connects it again.
    """
    import sys

    from tasks import runtime
    from publishing.connect import remove_account

    if not yes:
        if not sys.stdin.isatty():
            fail(f"removing {name!r} needs confirmation: run it in a terminal or pass --yes")
        typer.confirm(f"Remove account {name!r} and revoke the app's access to it at TikTok?", abort=True)
    with pipeline_errors(exit_code=EXIT_USAGE):
        settings = runtime.settings()
    with pipeline_errors():
        book = runtime.ledger(settings)
        removal = remove_account(settings, book, name)
        if not removal.removed_now:
            console.print(f"account [bold]{name}[/] was already removed ({removal.account.removed_at:%Y-%m-%d %H:%M} UTC)")
        else:
            revoked = "its access at TikTok revoked" if removal.revoked else removal.revoke_problem
            console.print(f"removed [bold]{name}[/] ({removal.account.nickname or removal.account.open_id}): {revoked}; "
                          "its posts stay in the ledger (`tiktok-pipeline posts list`)", soft_wrap=True)
        if removal.unfinished_posts:
            console.print(f"{removal.unfinished_posts} post(s) of {name} had not finished (held, queued or in flight): "
                          f"they stay as they are unless `tiktok-pipeline accounts connect {name}` connects it again",
                          soft_wrap=True)
        show_form_update(book)


def show_form_update(book: Ledger) -> None:
    """Offer the ledger's connected accounts in the publish-video form on the Prefect server; say what came of it."""
    from deployments.forms import update_publish_forms

    update = update_publish_forms([account.name for account in book.list_accounts()])
    for line in update.lines():
        console.print(line, soft_wrap=True)


@accounts_app.command("list")
def list_accounts() -> None:
    """Connected accounts: token health and the daily caps left."""
    from tasks import runtime

    with pipeline_errors():
        book = runtime.ledger()
        accounts = book.list_accounts()
        table = Table(title="Accounts")
        for column in ("name", "nickname", "status", "access token", "refresh token", "direct posts left", "inbox shares left"):
            table.add_column(column)
        now = datetime.now(UTC)
        for account in accounts:
            caps = book.caps_left(account.name)
            access = "expired" if account.access_expires_at <= now else f"{(account.access_expires_at - now).total_seconds() / 3600:.1f} h left"
            refresh = "expired" if account.refresh_expires_at <= now else f"{(account.refresh_expires_at - now).days} d left"
            status = account.status.value + (f" ({account.status_reason})" if account.status_reason else "")
            table.add_row(account.name, account.nickname or "", status, access, refresh,
                          f"{caps.direct.left}/{caps.direct.limit}", f"{caps.inbox.left}/{caps.inbox.limit}")
    if not accounts:
        console.print("no accounts yet: run `tiktok-pipeline accounts connect NAME`")
        return
    console.print(table)


@accounts_app.command("export")
def export(
    name: str = typer.Argument(..., help="The account to export"),
    output: Path = typer.Option(None, "--output", "-o", help="Write the JSON to this file instead of printing it"),
) -> None:
    """Everything stored about an account and its posts, every post with its audit trail, as JSON.

    OAuth tokens are never exported (the ledger's account view does not carry them).
    """
    import json

    from deployments.cli._posts import open_ledger, post_record

    with pipeline_errors(exit_code=EXIT_USAGE), open_ledger() as book:
        account = book.get_account(name)
        posts = sorted(book.list_posts(account_name=name), key=lambda post: post.id)
        document = {
            "exported_at": book.now().isoformat(),
            "account": account.model_dump(mode="json"),
            "posts": [post_record(book, post) for post in posts],
        }
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        # A folder that does not exist, or a folder as the file: the option's fault; a full disk is not.
        wrong_path = isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError))
        fail(f"cannot write {output}: {exc.strerror or exc}", EXIT_USAGE if wrong_path else EXIT_FAILED)
    typer.echo(f"exported account {name} ({len(posts)} posts) to {output}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(accounts_app)
