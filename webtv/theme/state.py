"""The current theme, who set it and when; listeners hear every change."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

log = logging.getLogger("webtv.theme")

Source = Literal["config", "api", "schedule"]


@dataclass(frozen=True)
class ThemeStatus:
    theme: str
    source: Source
    since: float  # Unix time the theme went on


@dataclass
class ThemeState:
    theme: str
    source: Source = "config"
    since: float = field(default_factory=time.time)
    listeners: list[Callable[[str], None]] = field(default_factory=list)

    def set(self, theme: str, source: Source) -> bool:
        """Switch to ``theme``; returns False when it is already on."""
        if theme == self.theme:
            return False
        log.info("theme changed: source=%s theme=%r previous=%r", source, theme, self.theme)
        self.theme, self.source, self.since = theme, source, time.time()
        for listener in self.listeners:
            listener(theme)
        return True

    def status(self) -> ThemeStatus:
        return ThemeStatus(self.theme, self.source, self.since)
