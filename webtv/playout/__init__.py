"""Playout: block decoders -> relay -> supervised outputs (RTMP, HLS)."""

from .block import Block, Entry
from .controller import Playout

__all__ = ["Block", "Entry", "Playout"]
