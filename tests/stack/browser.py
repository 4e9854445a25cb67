"""Driving the Prefect UI in Debian's chromium with Playwright (no browser download: Playwright is told
where chromium is). Prefect's select menus open on ArrowDown from the focused control, not on a
synthetic click."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
#: What the machine's closed network needs: no background connections, no first-run work.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="needs Debian's chromium (`make test` installs it: apt-get install chromium)")


@contextlib.contextmanager
def browser_page(width: int = 1280, height: int = 1600) -> Iterator[object]:
    """A new page of a headless chromium, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def form_field(page, label: str):
    """The schema-form property of the Run form whose title is `label` (with or without "(Optional)")."""
    name = re.compile(rf"^{re.escape(label)}( \(Optional\))?$")
    title = page.locator(".schema-form-property__label").filter(has_text=name)
    return page.locator(".schema-form-property").filter(has=title).last


def open_options(page, field) -> list[str]:
    """Open the select of `field` the way a keyboard user does; the options it offers."""
    from playwright.sync_api import expect

    field.locator("button.p-select-button__control").focus()
    page.keyboard.press("ArrowDown")
    options = page.locator("[role=option]")
    expect(options.first).to_be_visible()
    return options.all_inner_texts()


def choose(page, field, option: str) -> list[str]:
    """Pick `option` in the select of `field`; the options that were offered."""
    offered = open_options(page, field)
    page.locator("[role=option]").filter(has_text=re.compile(rf"^{re.escape(option)}$")).click()
    page.keyboard.press("Escape")
    return offered
