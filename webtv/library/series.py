"""Series memory (story mode): per theme, the episodes handed out and the characters directors
added, in the library's index.sqlite, so a restart goes on with the next episode and a
character keeps the look it was introduced with.

- ``episodes``: one row per episode handed out (its sequence id, number, title and the summary
  of the story so far, that episode included). The series' episode count is the highest
  number, its summary the summary of that episode. Clips look their episode up by sequence id
  when they enter the library, and the first one marks the episode ``made``.
- An episode handed out whose clips never entered the library (the daemon stopped while it
  rendered) never aired: at the next start it is forgotten with the characters it added
  (``forget_unmade``), so the series goes on from the last episode viewers could see, under
  the number that one would have had. Only episodes after the last one made go: an episode
  whose clips retention removed since stays in the story.
- ``series_cast``: the characters a director added, per theme, in the order they came. The
  operator's ``[[story.cast]]`` is not stored: it is read from channel.toml each time and goes
  first (see ``webtv.producer.sequences``). A name is stored once per theme: the first look
  stays.

Recording an episode is one transaction (its row and its new characters, or neither).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from webtv.director import Character, Sequence, Series

SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    sequence_id TEXT PRIMARY KEY,
    theme       TEXT NOT NULL,
    number      INTEGER NOT NULL,
    title       TEXT NOT NULL,
    summary     TEXT NOT NULL,
    created     REAL NOT NULL,
    made        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS episodes_theme ON episodes (theme, number);
CREATE TABLE IF NOT EXISTS series_cast (
    theme   TEXT NOT NULL,
    name    TEXT NOT NULL,
    look    TEXT NOT NULL,
    aliases TEXT NOT NULL DEFAULT '[]',
    voice   TEXT,
    episode INTEGER NOT NULL,
    PRIMARY KEY (theme, name)
);
"""


def read_series(db: sqlite3.Connection, theme: str) -> Series:
    """The stored series of ``theme`` (an empty one before its first episode)."""
    last = db.execute("SELECT number, summary FROM episodes WHERE theme = ? ORDER BY number DESC LIMIT 1",
                      (theme,)).fetchone()
    cast = tuple(
        Character(name=name, look=look, aliases=tuple(json.loads(aliases)), voice=voice)
        for name, look, aliases, voice in db.execute(
            "SELECT name, look, aliases, voice FROM series_cast WHERE theme = ? ORDER BY rowid", (theme,))
    )
    return Series(theme=theme, cast=cast, episodes=last[0] if last else 0, summary=last[1] if last else "")


def record_episode(db: sqlite3.Connection, sequence: Sequence, added: tuple[Character, ...]) -> None:
    """Store ``sequence``'s episode and the characters it ``added`` (one transaction)."""
    episode = sequence.episode
    if episode is None:
        raise ValueError(f"sequence {sequence.id} is not an episode")
    with db:
        db.execute("INSERT OR REPLACE INTO episodes (sequence_id, theme, number, title, summary, created)"
                   " VALUES (?, ?, ?, ?, ?, ?)",
                   (sequence.id, sequence.theme, episode.number, episode.title, episode.summary, time.time()))
        db.executemany("INSERT OR IGNORE INTO series_cast (theme, name, look, aliases, voice, episode)"
                       " VALUES (?, ?, ?, ?, ?, ?)",
                       [(sequence.theme, c.name, c.look, json.dumps(list(c.aliases)), c.voice, episode.number)
                        for c in added])


def forget_unmade(db: sqlite3.Connection) -> int:
    """Forget, per theme, the episodes after the last one made and the characters they added
    (see the module docstring); returns how many episodes went. One transaction."""
    after_last_made = ("(SELECT COALESCE(MAX(m.number), 0) FROM episodes m"
                       " WHERE m.theme = {table}.theme AND m.made = 1)")
    with db:
        db.execute(f"DELETE FROM series_cast WHERE episode > {after_last_made.format(table='series_cast')}")
        return db.execute(f"DELETE FROM episodes WHERE made = 0 AND number > {after_last_made.format(table='episodes')}"
                          ).rowcount


def mark_made(db: sqlite3.Connection, sequence_id: str) -> None:
    """A clip of ``sequence_id``'s episode entered the library (inside the ingest's transaction)."""
    db.execute("UPDATE episodes SET made = 1 WHERE sequence_id = ? AND made = 0", (sequence_id,))


def episode_of(db: sqlite3.Connection, sequence_id: str) -> tuple[int, str] | None:
    """(number, title) of the episode ``sequence_id`` is, or None (a showreel sequence)."""
    row = db.execute("SELECT number, title FROM episodes WHERE sequence_id = ?", (sequence_id,)).fetchone()
    return (row[0], row[1]) if row else None


def peek_series(root: Path, theme: str) -> Series:
    """The series of ``theme`` in the library at ``root``, read without taking the library
    (a running daemon holds it; SQLite's WAL lets a reader in): for ``webtv story``."""
    index = Path(root) / "index.sqlite"
    if not index.is_file():
        return Series(theme=theme)
    db = sqlite3.connect(f"{index.as_uri()}?mode=ro", uri=True)
    try:
        return read_series(db, theme)
    except sqlite3.OperationalError:  # a library from before story mode: no series tables yet
        return Series(theme=theme)
    finally:
        db.close()
