"""`tiktok-pipeline db ...`: the ledger database (schema upgrades, encryption key)."""

from __future__ import annotations

import typer

from deployments.cli._common import pipeline_errors

db_app = typer.Typer(
    name="db", help="The ledger database: schema migrations and the token encryption key.", no_args_is_help=True
)


@db_app.command()
def upgrade() -> None:
    """Apply pending migrations (also done automatically on first use)."""
    from ledger import Ledger
    from tiktok_pipeline.settings import load_settings

    with pipeline_errors(), Ledger.from_settings(load_settings(), migrate=False) as ledger:
        where = ledger.engine.url.render_as_string(hide_password=True)
        ran = ledger.migrate()
        state = "upgraded to" if ran else "already at"
        typer.echo(f"{where}: {state} revision {ledger.current_revision()}")


@db_app.command()
def current() -> None:
    """Show the schema revision of the database and the newest one this version ships."""
    from ledger import Ledger
    from tiktok_pipeline.settings import load_settings

    with pipeline_errors(), Ledger.from_settings(load_settings(), migrate=False) as ledger:
        where = ledger.engine.url.render_as_string(hide_password=True)
        current, head = ledger.current_revision(), ledger.head_revision()
        verdict = "up to date" if current == head else "run `tiktok-pipeline db upgrade`"
        typer.echo(f"{where}: revision {current or '(empty database)'}, head {head} ({verdict})")


@db_app.command("generate-key")
def generate_key() -> None:
    """Print a new Fernet key for TIKTOK_PIPELINE_ENCRYPTION_KEY."""
    from ledger import generate_key as new_key

    typer.echo(new_key())
    typer.echo(
        "Set it as TIKTOK_PIPELINE_ENCRYPTION_KEY. To rotate, put the new key first and the old one after it "
        "(comma-separated), then run `tiktok-pipeline db reencrypt-tokens`.",
        err=True,
    )


@db_app.command("reencrypt-tokens")
def reencrypt_tokens() -> None:
    """Re-encrypt every stored token with the first key of TIKTOK_PIPELINE_ENCRYPTION_KEY."""
    from ledger import Ledger
    from tiktok_pipeline.settings import load_settings

    with pipeline_errors(), Ledger.from_settings(load_settings()) as ledger:
        count = ledger.reencrypt_tokens()
        typer.echo(f"re-encrypted the tokens of {count} account(s); older keys can now be removed")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app)
