"""Debian's chromium, headless, as the page tests drive it through Playwright."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--autoplay-policy=no-user-gesture-required"]


def launch_chromium(playwright):
    """A browser that plays video without a click (autoplay policy) and calls nobody else."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


@contextmanager
def chromium() -> Iterator:
    """A launched headless chromium (``launch_chromium``), closed on the way out."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            yield browser
        finally:
            browser.close()


EXPECTED_CONSOLE_ERRORS = re.compile(r"Failed to load resource: the server responded with a status of 401")
"""A wrong token refused: the one error a page may log."""


def watch_errors(page, errors: list[str]) -> None:
    """Every page error, console error and failed response of ``page`` into ``errors`` (the
    401 of a wrong token aside)."""
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
    page.on("console", lambda msg: errors.append(f"{page.url}: console: {msg.text}")
            if msg.type == "error" and not EXPECTED_CONSOLE_ERRORS.search(msg.text) else None)
    page.on("response", lambda r: errors.append(f"{page.url}: HTTP {r.status} for {r.url}")
            if r.status >= 400 and r.status != 401 else None)


def click(page, selector: str, timeout_ms: float = 60_000) -> None:
    """``page.click`` with room for a renderer starved by a loaded machine (CI saw one click
    wait 30 s at "scrolling into view" beside the five-minute read), failing with what the next
    reader needs: the load average, and whether the page still ran script then (a stalled
    scroll or input path) or not (a renderer busy or starved the whole time)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.click(selector, timeout=timeout_ms)
    except PlaywrightTimeout as exc:
        try:
            page.wait_for_function("true", polling=100, timeout=5000)
            script = "the page still ran script"
        except PlaywrightTimeout:
            script = "the page ran no script either"
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        raise AssertionError(f"click on {selector} timed out; {script}; load average {load}: {exc}") from exc
