"""Cast in every prompt: a shot's prompt with the look of each character in it, added once.

A video model sees each prompt on its own, so a character is drawn the same from shot to shot
and episode to episode only when their look is spelled out the same way every time: the
phrase is ``look_phrase(character)``, always, appended after the prompt in cast order.

A character is in a shot when the director named them for it (by name or alias) or when the
prompt names them: a name or alias matched as whole words, case-insensitively ("Mara" matches
"mara's boat", not "Maradona"). Pure functions: no state, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from webtv.director.base import Character


def look_phrase(character: Character) -> str:
    """The words every prompt with ``character`` in it carries, the same each time."""
    return f"{character.name}: {character.look}"


def names_of(character: Character) -> tuple[str, ...]:
    return (character.name, *character.aliases)


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None


def present(prompt: str, cast: Iterable[Character], named: Iterable[str] = ()) -> tuple[Character, ...]:
    """The cast members in a shot, in cast order: named (name or alias, any case) or mentioned
    in ``prompt``. Names that are no cast member's are ignored."""
    named_keys = {n.casefold() for n in named}
    return tuple(
        c for c in cast
        if any(n.casefold() in named_keys for n in names_of(c)) or any(_mentions(prompt, n) for n in names_of(c))
    )


def cast_prompt(prompt: str, cast: Iterable[Character], named: Iterable[str] = ()) -> tuple[str, tuple[str, ...]]:
    """(the prompt as rendered, the names of the characters in it): ``prompt`` with each
    present character's ``look_phrase`` appended once (not again when it is already there)."""
    members = present(prompt, cast, named)
    missing = [look_phrase(c) for c in members if look_phrase(c) not in prompt]
    rendered = prompt.rstrip().rstrip(".") + ". " + "; ".join(missing) + "." if missing else prompt
    return rendered, tuple(c.name for c in members)
