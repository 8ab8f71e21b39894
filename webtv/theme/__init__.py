"""channel.toml / schedule / control API -> the theme on air."""

from webtv.theme.state import ThemeState

__all__ = ["ThemeState"]
