"""The library: validated clip files under ``<library>/clips`` and their SQLite index.

A clip enters by an atomic rename after validation, so a file in ``clips/`` is always whole.
Each row keeps the file's size and BLAKE2 digest: a file that changed after it entered is
caught before it airs and marked broken instead of going on air.

Crash consistency. ``clips/`` belongs to the index: a clip exists when it has both a row and a
file, and every change is ordered so that a crash at any point leaves, at worst, a row without
a file, a file without a row, or a file in ``incoming/``. ``reconcile()`` (run by every
``Library()``) repairs all three: leftovers in ``incoming/`` are removed (a render or ingest
that never finished), files in ``clips/`` without a row are removed (never re-indexed: the
prompt, theme and tags live only in the row, and such a file is either an ingest that did not
commit or a delete that did), rows whose file is gone are removed.

- ``ingest``: insert the row, rename the file into ``clips/``, commit (and remove the file
  again if the commit fails). Before the commit: no row; after it: both.
- ``forget`` (retention, ``DELETE /api/clips/{id}``): delete the rows and commit first, then
  the caller removes the files and their thumbnails off the event loop (``remove_files``).
  Between the two: files without rows.

Thumbnails (``thumbs/<id>.jpg``, one JPEG per clip, ``webtv.library.thumbs``) follow their
clip: made after it entered, removed with it; ``reconcile`` removes the ones without a row.

Banned clips (``state = 'banned'``, ``set_banned``) are indexed and on disk but never airable:
every query of what may air asks for ``state = 'ok'``, and retention deletes them first.

A full disk: ``forget`` (retention) that fails for want of space gives up the library's space
reserve (``.reserve``, see ``webtv.library.space``) and is tried once more, so retention can
still make room when the disk is full to the last byte. The reserve is kept for that alone:
making room is what lets every other writer go on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from webtv.director import Character, Sequence, Series, Shot
from webtv.library import series as memory
from webtv.library.lock import LibraryLock
from webtv.library.space import Reserve, is_disk_full

log = logging.getLogger("webtv.library")

T = TypeVar("T")

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
CREATE INDEX IF NOT EXISTS clips_shot ON clips (theme, prompt);
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
    keep: bool = False  # marked keep: retention never deletes it
    narration: str = ""  # story mode: the line spoken over it
    characters: tuple[str, ...] = ()  # story mode: the cast members in it
    episode: int | None = None  # story mode: the episode's number and title
    episode_title: str | None = None
    score: float | None = None  # best-of-K: the score of the take that aired (None: not scored)
    scores: tuple[float, ...] = ()  # every take's score, in the order they were drawn

    @property
    def banned(self) -> bool:
        return self.state == "banned"

    @property
    def label(self) -> str:
        """What the operator sees (``GET /api/clips`` state): banned, broken, kept, aired or
        fresh, the first that applies; ``LABEL_SQL`` is the same rule for queries."""
        if self.state in ("banned", "broken"):
            return self.state
        return "kept" if self.keep else "aired" if self.times_aired else "fresh"


LABEL_SQL = ("CASE WHEN state IN ('banned', 'broken') THEN state WHEN keep != 0 THEN 'kept'"
             " WHEN times_aired > 0 THEN 'aired' ELSE 'fresh' END")
LABELS = ("fresh", "aired", "kept", "banned", "broken")
SORTS = {  # GET /api/clips sort: the column, nulls last
    "created": "created",
    "aired": "last_aired",
    "score": "score",
}


def thumb_of(clip_file: Path) -> Path:
    """The thumbnail of the clip file ``<library>/clips/N.mp4``: ``<library>/thumbs/N.jpg``."""
    return clip_file.parent.parent / "thumbs" / f"{clip_file.stem}.jpg"


def file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Library:
    """Owns ``<root>/clips`` and ``<root>/index.sqlite``. Used from one thread (the event loop).

    Opened by one process at a time: the lock (``webtv.library.lock``) is taken before anything
    in the folder is read or repaired, and ``close()`` lets go of it; a second opener gets
    LibraryLocked naming the holder's pid and the folder untouched."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.lock = LibraryLock.take(self.root)
        try:
            self.clips_dir = self.root / "clips"
            self.incoming_dir = self.root / "incoming"
            self.thumbs_dir = self.root / "thumbs"
            for folder in (self.clips_dir, self.incoming_dir, self.thumbs_dir):
                folder.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.root / "index.sqlite")
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
            self.db.executescript(memory.SCHEMA)
            self._migrate()
            self.reconcile()
            self.reserve = Reserve(self.root / ".reserve")
            self.reserve.restore()
        except BaseException:
            self.lock.release()
            raise

    def _migrate(self) -> None:
        """Bring an index.sqlite made by an older version up to this schema."""
        columns = {row["name"] for row in self.db.execute("PRAGMA table_info(clips)")}
        if "keep" not in columns:
            with self.db:
                self.db.execute("ALTER TABLE clips ADD COLUMN keep INTEGER NOT NULL DEFAULT 0")
        story = {"narration": "TEXT NOT NULL DEFAULT ''", "characters": "TEXT NOT NULL DEFAULT '[]'",
                 "episode": "INTEGER", "episode_title": "TEXT"}
        with self.db:
            for name, kind in story.items():
                if name not in columns:
                    self.db.execute(f"ALTER TABLE clips ADD COLUMN {name} {kind}")
        takes = {"score": "REAL", "scores": "TEXT NOT NULL DEFAULT '[]'"}  # best-of-K (issue #13)
        with self.db:
            for name, kind in takes.items():
                if name not in columns:
                    self.db.execute(f"ALTER TABLE clips ADD COLUMN {name} {kind}")

    def reconcile(self) -> dict[str, int]:
        """Make index and files agree after a crash (see the module docstring). Blocking; run
        at start, before anything airs. Returns how many of each were removed."""
        removed = {"incoming": 0, "orphan_files": 0, "missing_rows": 0}
        for leftover in self.incoming_dir.iterdir():
            if not leftover.is_dir():
                leftover.unlink(missing_ok=True)
                removed["incoming"] += 1
        rows = {row["file"]: row["id"] for row in self.db.execute("SELECT id, file FROM clips")}
        on_disk = set()
        for entry in self.clips_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                continue
            on_disk.add(entry.name)
            if entry.name not in rows:
                entry.unlink(missing_ok=True)
                removed["orphan_files"] += 1
                log.warning("reconcile: file without an index row removed: file=%s", entry.name)
        for thumb in self.thumbs_dir.iterdir():
            if thumb.suffix != ".jpg" or f"{thumb.stem}.mp4" not in rows:  # a crash between row and thumbnail
                thumb.unlink(missing_ok=True)
        missing = [clip_id for name, clip_id in rows.items() if name not in on_disk]
        if missing:
            with self.db:
                self.db.executemany("DELETE FROM clips WHERE id = ?", [(i,) for i in missing])
            log.warning("reconcile: %d index rows without a file removed: ids=%s", len(missing), missing[:20])
        removed["missing_rows"] = len(missing)
        removed["unmade_episodes"] = memory.forget_unmade(self.db)
        if removed["unmade_episodes"]:
            log.warning("reconcile: %d episodes handed out but never made are forgotten: the series goes on"
                        " from the last episode made", removed["unmade_episodes"])
        return removed

    def close(self) -> None:
        try:
            self.db.close()
        finally:
            self.lock.release()

    def incoming_path(self, suffix: str = ".mp4") -> Path:
        """A private name for a clip being made; ``ingest`` moves it into the library."""
        return self.incoming_dir / f"{os.getpid()}-{time.monotonic_ns()}{suffix}"

    def ingest(self, made: Path, shot: Shot, duration: float, digest: str | None = None,
               scores: tuple[float, ...] = (), score: float | None = None) -> Clip:
        """Move a validated file into the library and index it; returns the new clip.
        ``scores``: every take's score; ``score``: the one of the take in the file."""
        digest = digest or file_digest(made)
        size = made.stat().st_size
        episode, title = memory.episode_of(self.db, shot.sequence_id) or (None, None)
        target: Path | None = None
        try:
            with self.db:  # the rename happens inside the transaction: no row until both are done
                cur = self.db.execute(
                    "INSERT INTO clips (file, prompt, theme, tags, duration, created, size, digest,"
                    " narration, characters, episode, episode_title, score, scores)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (f"pending-{made.name}", shot.prompt, shot.theme, json.dumps(list(shot.tags)),
                     duration, time.time(), size, digest, shot.narration, json.dumps(list(shot.characters)),
                     episode, title, score, json.dumps(list(scores))),
                )
                clip_id = cur.lastrowid
                if episode is not None:
                    memory.mark_made(self.db, shot.sequence_id)
                name = f"{clip_id:08d}.mp4"
                self.db.execute("UPDATE clips SET file = ? WHERE id = ?", (name, clip_id))
                target = self.clips_dir / name
                os.replace(made, target)
        except BaseException:
            if target is not None:  # renamed, but the row did not commit: no file without a row
                target.unlink(missing_ok=True)
            raise
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

    def fresh_seconds(self, theme: str) -> float:
        """The airtime of the never-aired clips of ``theme``, in seconds."""
        row = self.db.execute(
            "SELECT COALESCE(SUM(duration), 0) FROM clips WHERE state = 'ok' AND times_aired = 0 AND theme = ?",
            (theme,),
        ).fetchone()
        return float(row[0])

    def has_prompt(self, prompt: str, theme: str) -> bool:
        """Whether a clip of this exact shot was made before (so it is not rendered again)."""
        row = self.db.execute("SELECT 1 FROM clips WHERE prompt = ? AND theme = ? LIMIT 1", (prompt, theme)).fetchone()
        return row is not None

    def total_made(self) -> int:
        """Every clip ever indexed, broken and deleted ones included (the highest id handed out:
        AUTOINCREMENT ids are never reused, so this does not shrink when retention deletes)."""
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'clips'").fetchone()
        return int(row[0]) if row else 0

    def stats(self) -> tuple[int, float]:
        """(clips, seconds) of airable clips."""
        row = self.db.execute("SELECT COUNT(*), COALESCE(SUM(duration), 0) FROM clips WHERE state = 'ok'").fetchone()
        return row[0], float(row[1])

    def _write(self, work: Callable[[], T]) -> T:
        """``work()`` in one transaction; when it fails for want of space, once more after giving
        up the space reserve."""
        try:
            with self.db:
                return work()
        except sqlite3.OperationalError as exc:
            if not (is_disk_full(exc) and self.reserve.release()):
                raise
        with self.db:
            return work()

    def mark_aired(self, clip_ids: list[int], when: float) -> None:
        with self.db:
            self.db.executemany(
                "UPDATE clips SET times_aired = times_aired + 1, last_aired = ? WHERE id = ?",
                [(when, i) for i in clip_ids],
            )

    def mark_broken(self, clip_id: int, reason: str) -> None:
        with self.db:
            self.db.execute("UPDATE clips SET state = 'broken', reason = ? WHERE id = ?", (reason, clip_id))

    # -- series memory (story mode, webtv.library.series) -------------------------------------

    def series(self, theme: str) -> Series:
        """The series of ``theme`` as stored: episodes handed out, summary, characters added."""
        return memory.read_series(self.db, theme)

    def record_episode(self, sequence: Sequence, added: tuple[Character, ...] = ()) -> None:
        """``sequence``'s episode was handed out; ``added`` are the characters it introduced."""
        memory.record_episode(self.db, sequence, added)

    # -- retention ---------------------------------------------------------------------------

    def usage(self) -> tuple[int, int]:
        """(clips, bytes) the library holds on disk, as indexed: broken clips included."""
        row = self.db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM clips").fetchone()
        return int(row[0]), int(row[1])

    def deletion_order(self) -> list[Clip]:
        """Clips not marked keep, in the order retention deletes them: banned first, then broken,
        then most aired, then oldest (see webtv/library/retention.py)."""
        rows = self.db.execute(
            "SELECT * FROM clips WHERE keep = 0"
            " ORDER BY state != 'banned', state = 'ok', times_aired DESC, created, id"
        )
        return [self._clip(r) for r in rows]

    def forget(self, clip_ids: list[int]) -> list[Path]:
        """Delete the rows of ``clip_ids`` (committed); returns their files, which the caller
        removes next (``remove_files``). A crash in between leaves files without rows, which
        ``reconcile`` removes."""
        if not clip_ids:
            return []
        marks = ",".join("?" * len(clip_ids))
        files = [self.clips_dir / r["file"] for r in
                 self.db.execute(f"SELECT file FROM clips WHERE id IN ({marks})", clip_ids)]
        self._write(lambda: self.db.execute(f"DELETE FROM clips WHERE id IN ({marks})", clip_ids))
        return files

    @staticmethod
    def remove_files(paths: list[Path]) -> int:
        """Remove clip files and their thumbnails (blocking: run it off the event loop); returns
        how many clip files were there."""
        removed = 0
        for path in paths:
            thumb_of(path).unlink(missing_ok=True)
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
        return removed

    def thumb_path(self, clip: Clip) -> Path:
        return thumb_of(clip.path)

    def without_thumbnail(self) -> list[Clip]:
        """Clips (broken ones too) whose thumbnail is missing. Blocking: looks at the folder."""
        have = {p.stem for p in self.thumbs_dir.glob("*.jpg")}
        rows = self.db.execute("SELECT * FROM clips ORDER BY id DESC")
        return [c for c in map(self._clip, rows) if c.path.stem not in have]

    def set_banned(self, clip_id: int, banned: bool) -> Clip | None:
        """Ban a clip (it never airs again; retention deletes it first) or lift the ban; a broken
        clip stays broken. The clip as it is now, None when there is no such clip."""
        if banned:
            sql = "UPDATE clips SET state = 'banned' WHERE id = ? AND state = 'ok'"
        else:
            sql = "UPDATE clips SET state = 'ok' WHERE id = ? AND state = 'banned'"
        self._write(lambda: self.db.execute(sql, (clip_id,)))
        return self.get(clip_id)

    def airable(self, clip_ids: set[int]) -> set[int]:
        """Those of ``clip_ids`` that may air (indexed, not banned, not broken)."""
        if not clip_ids:
            return set()
        marks = ",".join("?" * len(clip_ids))
        rows = self.db.execute(f"SELECT id FROM clips WHERE state = 'ok' AND id IN ({marks})", list(clip_ids))
        return {row[0] for row in rows}

    def browse(self, *, theme: str | None = None, tag: str | None = None, label: str | None = None,
               sort: str = "created", descending: bool = True, limit: int = 50,
               offset: int = 0) -> tuple[int, list[Clip]]:
        """A page of the library for the operator (``GET /api/clips``): clips of ``theme``,
        carrying ``tag``, in state ``label`` (``Clip.label``), sorted by ``sort`` (``SORTS``,
        nulls last, the id breaks ties); (how many match, the page)."""
        where, args = [], []
        if theme is not None:
            where.append("theme = ?")
            args.append(theme)
        if tag is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(clips.tags) WHERE json_each.value = ?)")
            args.append(tag)
        if label is not None:
            where.append(f"({LABEL_SQL}) = ?")
            args.append(label)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        total = self.db.execute(f"SELECT COUNT(*) FROM clips{clause}", args).fetchone()[0]
        column, way = SORTS[sort], "DESC" if descending else "ASC"
        rows = self.db.execute(
            f"SELECT * FROM clips{clause} ORDER BY {column} IS NULL, {column} {way}, id {way} LIMIT ? OFFSET ?",
            [*args, limit, offset])
        return int(total), [self._clip(r) for r in rows]

    def set_keep(self, clip_id: int, keep: bool) -> bool:
        """Mark a clip keep (retention never deletes it) or not; False when there is no such clip."""
        with self.db:
            cur = self.db.execute("UPDATE clips SET keep = ? WHERE id = ?", (int(keep), clip_id))
        return cur.rowcount > 0

    def count_kept(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM clips WHERE keep != 0").fetchone()[0]

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
            keep=bool(row["keep"]),
            narration=row["narration"],
            characters=tuple(json.loads(row["characters"])),
            episode=row["episode"],
            episode_title=row["episode_title"],
            score=row["score"],
            scores=tuple(json.loads(row["scores"])),
        )

    def recent_clip_bytes(self, last: int = 20) -> int | None:
        """The largest of the last ``last`` clips made (None for an empty library)."""
        row = self.db.execute("SELECT MAX(size) FROM (SELECT size FROM clips ORDER BY id DESC LIMIT ?)",
                              (last,)).fetchone()
        return row[0]

    def total_bytes(self) -> int:
        """Bytes of airable clips, as indexed (the size of each file when it entered)."""
        return int(self.db.execute("SELECT COALESCE(SUM(size), 0) FROM clips WHERE state = 'ok'").fetchone()[0])
