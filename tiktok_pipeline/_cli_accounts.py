"""`tiktok-pipeline accounts ...`: connect TikTok accounts and see their health."""

from __future__ import annotations

import webbrowser
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from tiktok_pipeline._cli_common import console, pipeline_errors

accounts_app = typer.Typer(name="accounts", help="Connect TikTok accounts and check their tokens and caps.", no_args_is_help=True)


@accounts_app.command()
def connect(
    name: str = typer.Argument(..., help="A short name for this account, used by --account"),
    open_browser: bool = typer.Option(True, "--open/--no-open", help="Open the authorize page in a browser"),
    timeout: float = typer.Option(300.0, help="Seconds to wait for the redirect"),
) -> None:
    """Authorize a TikTok account (Login Kit OAuth) and store it with its tokens encrypted."""
    from tasks import _context
    from tiktok_pipeline._connect import connect_account

    settings = _context.settings()

    def show(url: str) -> None:
        console.print(f"Open this URL to authorize the app, then come back here:\n{url}", soft_wrap=True)
        if open_browser:
            webbrowser.open(url)

    with pipeline_errors():
        account = connect_account(settings, _context.ledger(settings), name, show, timeout=timeout)
    console.print(f"connected [bold]{account.name}[/]: {account.nickname} (@{account.username}), scopes {', '.join(account.scopes)}")


@accounts_app.command("list")
def list_accounts() -> None:
    """Connected accounts: token health and the daily caps left."""
    from tasks import _context

    with pipeline_errors():
        book = _context.ledger()
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

    from tiktok_pipeline._cli_posts import open_ledger, post_record

    with pipeline_errors(), open_ledger() as book:
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
        typer.echo(f"error: cannot write {output}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"exported account {name} ({len(posts)} posts) to {output}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(accounts_app)
