"""The library: validated clip files under ``<library>/clips`` and their SQLite index.

A clip enters by an atomic rename after validation, so a file in ``clips/`` is always whole.
Each row keeps the file's size and BLAKE2 digest: a file that changed after it entered is
caught before it airs and marked broken instead of going on air.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from webtv.director import Shot

SCHEMA = """
CREATE TABLE IF NOT EXISTS clips (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    file        TEXT NOT NULL UNIQUE,
    prompt      TEXT NOT NULL,
    theme       TEXT NOT NULL,
    tags        TEXT NOT NULL DEFAULT '[]',
    duration    REAL NOT NULL,
    created     REAL NOT NULL,
    times_aired INTEGER NOT NULL DEFAULT 0,
    last_aired  REAL,
    size        INTEGER NOT NULL,
    digest      TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'ok',
    reason      TEXT
);
CREATE INDEX IF NOT EXISTS clips_fresh ON clips (state, times_aired, theme, created);
CREATE INDEX IF NOT EXISTS clips_rotation ON clips (state, last_aired);
"""


@dataclass(frozen=True)
class Clip:
    id: int
    path: Path
    prompt: str
    theme: str
    tags: tuple[str, ...]
    duration: float
    created: float
    times_aired: int
    last_aired: float | None
    size: int
    digest: str
    state: str


def file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Library:
    """Owns ``<root>/clips`` and ``<root>/index.sqlite``. Used from one thread (the event loop)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.clips_dir = self.root / "clips"
        self.incoming_dir = self.root / "incoming"
        self.clips_dir.mkdir(parents=True, exist_ok=True)
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.root / "index.sqlite")
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def incoming_path(self, suffix: str = ".mp4") -> Path:
        """A private name for a clip being made; ``ingest`` moves it into the library."""
        return self.incoming_dir / f"{os.getpid()}-{time.monotonic_ns()}{suffix}"

    def ingest(self, made: Path, shot: Shot, duration: float, digest: str | None = None) -> Clip:
        """Move a validated file into the library and index it; returns the new clip."""
        digest = digest or file_digest(made)
        size = made.stat().st_size
        with self.db:
            cur = self.db.execute(
                "INSERT INTO clips (file, prompt, theme, tags, duration, created, size, digest)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (f"pending-{made.name}", shot.prompt, shot.theme, json.dumps(list(shot.tags)),
                 duration, time.time(), size, digest),
            )
            clip_id = cur.lastrowid
            name = f"{clip_id:08d}.mp4"
            self.db.execute("UPDATE clips SET file = ? WHERE id = ?", (name, clip_id))
            os.replace(made, self.clips_dir / name)
        return self.get(clip_id)

    def get(self, clip_id: int) -> Clip | None:
        row = self.db.execute("SELECT * FROM clips WHERE id = ?", (clip_id,)).fetchone()
        return self._clip(row) if row else None

    def fresh(self, theme: str, limit: int) -> list[Clip]:
        """Never-aired clips of ``theme``, oldest first."""
        rows = self.db.execute(
            "SELECT * FROM clips WHERE state = 'ok' AND times_aired = 0 AND theme = ?"
            " ORDER BY created, id LIMIT ?",
            (theme, limit),
        )
        return [self._clip(r) for r in rows]

    def rotation(self, limit: int, exclude: set[int] = frozenset()) -> list[Clip]:
        """Clips for the loop: least recently aired first (never aired before all)."""
        rows = self.db.execute(
            "SELECT * FROM clips WHERE state = 'ok'"
            " ORDER BY last_aired IS NOT NULL, last_aired, times_aired, created, id LIMIT ?",
            (limit + len(exclude),),
        )
        return [c for c in map(self._clip, rows) if c.id not in exclude][:limit]

    def all_clips(self) -> list[Clip]:
        return [self._clip(r) for r in self.db.execute("SELECT * FROM clips WHERE state = 'ok' ORDER BY id")]

    def count_fresh(self, theme: str) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM clips WHERE state = 'ok' AND times_aired = 0 AND theme = ?", (theme,)
        ).fetchone()
        return row[0]

    def total_made(self) -> int:
        """Every clip ever indexed, broken ones included."""
        return self.db.execute("SELECT COUNT(*) FROM clips").fetchone()[0]

    def stats(self) -> tuple[int, float]:
        """(clips, seconds) of airable clips."""
        row = self.db.execute("SELECT COUNT(*), COALESCE(SUM(duration), 0) FROM clips WHERE state = 'ok'").fetchone()
        return row[0], float(row[1])

    def mark_aired(self, clip_ids: list[int], when: float) -> None:
        with self.db:
            self.db.executemany(
                "UPDATE clips SET times_aired = times_aired + 1, last_aired = ? WHERE id = ?",
                [(when, i) for i in clip_ids],
            )

    def mark_broken(self, clip_id: int, reason: str) -> None:
        with self.db:
            self.db.execute("UPDATE clips SET state = 'broken', reason = ? WHERE id = ?", (reason, clip_id))

    def check_intact(self, clip: Clip) -> str | None:
        """None when the file is as it was ingested, else why not. Blocking: reads the file."""
        try:
            size = clip.path.stat().st_size
        except OSError as exc:
            return f"file missing: {exc.strerror}"
        if size != clip.size:
            return f"file changed size: {size} bytes, indexed {clip.size}"
        if file_digest(clip.path) != clip.digest:
            return "file contents changed since it entered the library"
        return None

    def _clip(self, row: sqlite3.Row) -> Clip:
        return Clip(
            id=row["id"],
            path=self.clips_dir / row["file"],
            prompt=row["prompt"],
            theme=row["theme"],
            tags=tuple(json.loads(row["tags"])),
            duration=row["duration"],
            created=row["created"],
            times_aired=row["times_aired"],
            last_aired=row["last_aired"],
            size=row["size"],
            digest=row["digest"],
            state=row["state"],
        )
