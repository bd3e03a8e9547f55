"""SQLite offline spool: every MQTT event is written here first and deleted after its PUBACK.

Public API::

    spool = Spool(path, max_events=100_000, max_bytes=64 * 2**20, broker="broker.lan:1883")
    row = spool.append(payload)                  # row id; 0 if it had to be dropped (counted)
    spool.pending(after=0, limit=100)            # [(row id, payload), ...] oldest first
    spool.delete([row, ...])                     # after the broker acknowledged them
    spool.depth, spool.dropped                   # rows waiting; rows dropped since the spool exists
    spool.held                                   # rows waiting for another broker
    spool.close()

Guarantees and limits:

* Order survives restarts: ids come from ``AUTOINCREMENT``, so a new row always sorts after
  every row ever written, even when the newest rows were already deleted.
* WAL mode with ``synchronous=NORMAL``: a committed row survives ``kill -9`` of the process
  (a power cut may lose the last few; a full sync per event would cost an SD card write each).
* Bounded: beyond ``max_events`` rows or ``max_bytes`` on disk the oldest rows are dropped and
  counted, as they are when the disk is full. ``append`` never raises.
* A full disk: SQLite needs room even to delete (the deletion goes to the WAL first), so a
  small reserve file (``<spool>.reserve``) is kept beside the spool. When a write fails for
  lack of space the reserve is given up, the oldest tenth of the rows is dropped and the WAL
  is truncated; the reserve comes back once there is room again.
* Exclusive locking mode: a second emopi process on the same state directory gets one clear
  error instead of publishing the same events twice.
* A spool file that is not a database is moved aside (``*.corrupt-<time>``) and a new one started.
* Each row records the broker it was meant for (``host:port``, ``embedded:port``). A spool
  opened for one broker sends only that broker's rows (and rows from before brokers were
  recorded); rows for another broker are *held*: kept, counted in ``held``, logged at open,
  sent when emopi publishes to their broker again, and dropped oldest-first with the rest
  when the spool is full. So a run against a mistyped host never delivers its events to the
  next, correct broker, where they would mix with another installation's data. ``broker=None``
  opens the spool for inspection: every row counts as pending.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from emopi.edge.errors import EmopiError

log = logging.getLogger(__name__)

SPOOL_FILE = "mqtt-spool.sqlite3"
SQLITE_FULL = 13  # the sqlite3 module names this code only from Python 3.11
WARN_EVERY_S = 60.0  # at most one warning a minute while events are being dropped
RESERVE_BYTES = 256 * 1024  # room kept in hand to delete rows on a full disk
WAL_PAGES, WAL_LIMIT_BYTES = 32, 2**20  # checkpoint growth stays below the reserve

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL, broker TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped', 0);
"""


#: Rows from spools written before brokers were recorded: sent to whichever broker is current.
ANY_BROKER = ""


class Spool:
    def __init__(
        self,
        path: str | Path,
        max_events: int = 100_000,
        max_bytes: int | None = None,
        broker: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.broker = broker
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._last_warning = -WARN_EVERY_S
        self._reserve = self.path.with_name(self.path.name + ".reserve")
        self._reserve_bytes = min(RESERVE_BYTES, (max_bytes or 2**62) // 16)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmopiError(
                f"cannot create the state directory {self.path.parent} for the MQTT spool: "
                f"{exc.strerror or exc}"
            ) from None
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise self._open_error(exc) from None
            self._move_aside(exc)
            self._db = self._open()
        self._depth = self._held = 0
        self._count()
        self._dropped: int = self._db.execute(
            "SELECT value FROM meta WHERE key='dropped'"
        ).fetchone()[0]
        self._keep_reserve()
        if self._depth:
            log.info("MQTT spool %s holds %d undelivered event(s)", self.path, self._depth)
        for other, count in self._other_brokers():
            log.warning(
                "MQTT spool %s holds %d event(s) meant for broker %s, not %s: they stay spooled "
                "(spool_held) until emopi publishes to %s again; delete the spool to discard them",
                self.path,
                count,
                other,
                self.broker,
                other,
            )

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=1.0, check_same_thread=False)
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # A small WAL (checkpointed every 32 pages, cut back to 1 MiB): the spool's disk use
            # stays close to its rows, which matters on a nearly full SD card.
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
            db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
            self._max_pages = db.execute("PRAGMA max_page_count").fetchone()[0]
            if self._max_bytes:
                page = db.execute("PRAGMA page_size").fetchone()[0]
                self._max_pages = max(16, self._max_bytes // page)
                db.execute(f"PRAGMA max_page_count={self._max_pages}")
            with db:
                db.executescript(_SCHEMA)  # a write: takes the exclusive lock now, not later
                columns = [row[1] for row in db.execute("PRAGMA table_info(events)")]
                if "broker" not in columns:  # a spool from before brokers were recorded
                    db.execute("ALTER TABLE events ADD COLUMN broker TEXT NOT NULL DEFAULT ''")
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _open_error(self, exc: sqlite3.Error) -> EmopiError:
        if _is_full(exc):
            return EmopiError(
                f"the disk holding the MQTT spool {self.path} is full; free some space there "
                "(or point state_dir at another disk)"
            )
        if "locked" in str(exc):
            return EmopiError(
                f"the MQTT spool {self.path} is in use by another emopi process "
                "(run one `emopi run` per state directory)"
            )
        return EmopiError(
            f"cannot open the MQTT spool {self.path}: {exc} (is the state directory writable?)"
        )

    def _move_aside(self, exc: sqlite3.Error) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.warning("MQTT spool %s is unreadable (%s); moved to %s", self.path, exc, aside)
        try:
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                sidecar = self.path.with_name(self.path.name + suffix)
                if sidecar.exists():
                    sidecar.rename(aside.with_name(aside.name + suffix))
        except OSError as err:
            raise EmopiError(
                f"the MQTT spool {self.path} is corrupt and cannot be moved aside: {err.strerror}"
            ) from None

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def held(self) -> int:
        """Rows meant for another broker: kept, never sent to this one."""
        return self._held

    def _scope(self) -> tuple[str, tuple[str, ...]]:
        """SQL condition (and its parameters) for the rows this spool may send."""
        if self.broker is None:
            return "1", ()
        return "broker IN (?, ?)", (self.broker, ANY_BROKER)

    def _count(self) -> None:
        where, params = self._scope()
        total, mine = self._db.execute(
            f"SELECT COUNT(*), COALESCE(SUM({where}), 0) FROM events", params
        ).fetchone()
        self._depth, self._held = int(mine), int(total) - int(mine)

    def _other_brokers(self) -> list[tuple[str, int]]:
        where, params = self._scope()
        return self._db.execute(
            f"SELECT broker, COUNT(*) FROM events WHERE NOT ({where}) GROUP BY broker", params
        ).fetchall()

    def append(self, payload: str) -> int:
        """Store one event; drop the oldest to make room. Returns its row id, 0 if dropped."""
        with self._lock:
            excess = self._depth + self._held + 1 - self._max_events
            if excess > 0:
                self._drop_oldest(excess, "spool_max_events reached")
            for _attempt in range(4):
                try:
                    with self._db:
                        row = self._db.execute(
                            "INSERT INTO events (payload, broker) VALUES (?, ?)",
                            (payload, self.broker or ANY_BROKER),
                        ).lastrowid
                    self._depth += 1
                    return int(row or 0)
                except sqlite3.Error as exc:
                    if not _is_full(exc):
                        self._count_lost(f"cannot write to the MQTT spool: {exc}")
                        return 0
                    if not self._make_room():
                        break
            self._count_lost("the MQTT spool is full and nothing could be freed")
            return 0

    def pending(self, after: int = 0, limit: int = 100) -> list[tuple[int, str]]:
        """Undelivered events with a row id above ``after``, oldest first."""
        where, params = self._scope()
        with self._lock:
            return self._db.execute(
                f"SELECT id, payload FROM events WHERE id > ? AND {where} ORDER BY id LIMIT ?",
                (after, *params, limit),
            ).fetchall()

    def delete(self, rows: Iterable[int]) -> None:
        """Forget delivered events. On a write error they stay (and are sent again later)."""
        ids = [(row,) for row in rows]
        if not ids:
            return
        with self._lock:
            for _attempt in range(2):
                try:
                    with self._db:
                        cur = self._db.executemany("DELETE FROM events WHERE id = ?", ids)
                    self._depth -= max(0, cur.rowcount)
                    self._keep_reserve()
                    return
                except sqlite3.Error as exc:
                    if not (_is_full(exc) and self._release_reserve()):
                        self._warn(f"cannot delete delivered events from the MQTT spool: {exc}")
                        return
                    self._truncate_wal()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _drop_oldest(self, count: int, reason: str) -> bool:
        try:
            with self._db:
                cur = self._db.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?)",
                    (count,),
                )
                gone = max(0, cur.rowcount)
                self._db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (gone,))
        except sqlite3.Error as exc:
            self._warn(f"cannot drop old events from the MQTT spool: {exc}")
            return False
        with contextlib.suppress(sqlite3.Error):  # the drop may have taken held rows too
            self._count()
        self._dropped += gone
        self._warn(f"MQTT spool: dropped the {gone} oldest event(s): {reason}")
        return gone > 0

    def _make_room(self) -> bool:
        """The disk is full. The reserve goes first, so the pending checkpoint can complete and
        empty the WAL (the database file may have to grow for it). The file is then capped at
        its size, so new rows reuse the pages of dropped ones and no later checkpoint needs
        to grow it; the oldest tenth of the rows is dropped. The cap is lifted (and a new
        reserve made) once the disk has room again."""
        freed = self._release_reserve()
        self._truncate_wal()
        with contextlib.suppress(sqlite3.Error):
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            self._db.execute(f"PRAGMA max_page_count={pages}")
        if self._depth + self._held:
            tenth = max(1, (self._depth + self._held) // 10)
            freed = self._drop_oldest(tenth, "the disk is full") or freed
            self._truncate_wal()
        self._keep_reserve()
        return freed

    def _truncate_wal(self) -> None:
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.debug("MQTT spool checkpoint failed: %s", exc)

    def _release_reserve(self) -> bool:
        try:
            self._reserve.unlink()
        except OSError:
            return False
        log.warning("the disk holding the MQTT spool %s is full", self.path)
        return True

    def _keep_reserve(self) -> None:
        """Create the reserve file when it is missing and the disk has room to spare."""
        size = self._reserve_bytes
        if size <= 0 or self._reserve.exists():
            return
        try:
            disk = os.statvfs(self.path.parent)
            if disk.f_bavail * disk.f_frsize < 2 * size:
                return  # not now: taking the last space would only make the next write fail
            fd = os.open(self._reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)  # real blocks, not a sparse file
            finally:
                os.close(fd)
            self._db.execute(f"PRAGMA max_page_count={self._max_pages}")
        except (OSError, sqlite3.Error) as exc:
            log.debug("cannot create the spool reserve %s: %s", self._reserve, exc)
            with contextlib.suppress(OSError):
                self._reserve.unlink()

    def _count_lost(self, reason: str) -> None:
        """The new event itself could not be stored: count it, best effort on disk too."""
        self._dropped += 1
        self._warn(f"{reason}; event dropped")
        try:
            with self._db:
                self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'dropped'")
        except sqlite3.Error:
            pass

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_S:
            self._last_warning = now
            log.warning("%s (%d dropped so far)", message, self._dropped)


def _is_full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == SQLITE_FULL or "full" in str(exc)
