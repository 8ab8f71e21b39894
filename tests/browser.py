"""Debian's chromium, headless, as the page tests drive it through Playwright."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--autoplay-policy=no-user-gesture-required"]


def launch_chromium(playwright):
    """A browser that plays video without a click (autoplay policy) and calls nobody else."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
