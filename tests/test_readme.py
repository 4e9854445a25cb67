"""The README stays true: its configuration table is the settings model, its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from deployments.cli import build_app
from tiktok_pipeline.settings import settings_table

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
MAKEFILE = (Path(__file__).resolve().parents[1] / "Makefile").read_text(encoding="utf-8")


def test_configuration_table_matches_the_settings_model() -> None:
    start = README.index("<!-- settings-table -->")
    end = README.index("<!-- /settings-table -->")
    table = README[start + len("<!-- settings-table -->"):end].strip()
    assert table == settings_table(), (
        "README configuration table is stale; regenerate it with\n"
        "  .venv/bin/python -c 'from tiktok_pipeline.settings import settings_table; print(settings_table())'"
    )


def test_every_make_target_the_readme_names_exists() -> None:
    for target in set(re.findall(r"\bmake (\w+)", README)):
        assert re.search(rf"^{target}:", MAKEFILE, re.MULTILINE), f"README names `make {target}`"


def test_every_command_the_readme_names_exists() -> None:
    app = build_app()
    runner = CliRunner()
    for line in re.findall(r"^tiktok-pipeline ([a-z-]+(?: [a-z-]+)?)", README, re.MULTILINE):
        result = runner.invoke(app, [*line.split(), "--help"])
        assert result.exit_code == 0, f"`tiktok-pipeline {line}` from the README: {result.output}"
