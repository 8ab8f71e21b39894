"""Status snapshots for tests: any dataclass of webtv.status filled in from its type hints."""

from __future__ import annotations

import dataclasses
import itertools
import types
import typing
from typing import Any


def populated(kind: Any, numbers: typing.Iterator[int] | None = None) -> Any:
    """A value of type ``kind`` with every field set: each number distinct, optional fields not
    None, lists of two items, strings unique. New fields are filled in as they are added."""
    numbers = itertools.count(1) if numbers is None else numbers
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(**{f.name: populated(hints[f.name], numbers) for f in dataclasses.fields(kind) if f.init})
    if origin in (typing.Union, types.UnionType):
        return populated(next(arg for arg in args if arg is not type(None)), numbers)
    if origin is typing.Literal:
        return args[0]
    if origin is list:
        return [populated(args[0], numbers) for _ in range(2)]
    if origin is dict or kind is dict:
        return {}
    if kind is bool:
        return True
    if kind is int:
        return next(numbers)
    if kind is float:
        return next(numbers) + 0.5
    if kind is str:
        return f"text-{next(numbers)}"
    if kind is Any:
        return None
    raise TypeError(f"populated() does not know {kind!r}: teach it")
