"""How a block's airing went, judged from plain numbers (no processes, no clocks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["ok", "stalled", "overran", "exit", "silent", "short"]


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


OK = Verdict("ok")


def judge(
    *,
    bytes_out: int,
    exit_code: int | None,
    media_s: float,
    duration_s: float,
    stalled_s: float | None = None,
    overran_s: float | None = None,
    short_by_s: float = 0.5,
) -> Verdict:
    """The verdict on one decoder: killed for silence (``stalled_s``: it wrote nothing that
    long) or for running past its slot (``overran_s``), a failed exit code, no bytes at all,
    or stream time (``media_s``, from its video timestamps) more than ``short_by_s`` short of
    the block's ``duration_s`` (e.g. a clip it could not open after the first). The first
    that applies, in that order; anything but "ok" counts as a failed block."""
    if stalled_s is not None:
        return Verdict("stalled", f"no output for {stalled_s:g} s")
    if overran_s is not None:
        return Verdict("overran", f"ran {overran_s:.1f} s past its slot")
    if exit_code != 0:
        return Verdict("exit", "did not exit" if exit_code is None else f"exit code {exit_code}")
    if bytes_out == 0:
        return Verdict("silent", "wrote nothing")
    if media_s < duration_s - short_by_s:
        return Verdict("short", f"ended {duration_s - media_s:.1f} s early")
    return OK
