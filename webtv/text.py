"""Text that enters the channel from outside (the control API, channel.toml, an LLM, cast
names): one line of printable Unicode, or a reason why not.

Allowed: every character of a letter, mark, number, punctuation, symbol or space-separator
category (so NBSP and ideographic spaces, accents and emoji pass), plus the zero-width
joiner and non-joiner that emoji sequences and Persian or Indic scripts need. Rejected:
what UTF-8 cannot encode (a lone UTF-16 surrogate: SQLite, the files and every encoder
downstream would fail on it), control characters (tabs and newlines too: a theme, a prompt
or a name is one line), other invisible format characters (bidirectional overrides, BOM,
soft hyphen), line and paragraph separators, private-use and unassigned code points.
"""

from __future__ import annotations

import unicodedata

JOINERS = frozenset("\u200c\u200d")  # zero-width non-joiner, zero-width joiner
REJECTED = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


class BadText(ValueError):
    """Text that is not one line of printable Unicode; the message says why."""


def text_problem(text: str) -> str | None:
    """Why ``text`` is not one line of printable UTF-8 text, or None when it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"cannot be encoded as UTF-8: lone surrogate U+{ord(text[exc.start]):04X} at position {exc.start}"
    for position, char in enumerate(text):
        if char in JOINERS:
            continue
        kind = REJECTED.get(unicodedata.category(char))
        if kind:
            return f"holds {kind}, U+{ord(char):04X}, at position {position}; only printable text on one line is allowed"
    return None


def checked_text(text: str, what: str = "text") -> str:
    """``text`` unchanged when it is one line of printable text; else BadText naming ``what``.

    The check for every text that comes from outside: themes, prompts, titles, cast names."""
    problem = text_problem(text)
    if problem is not None:
        raise BadText(f"{what} {problem}")
    return text
