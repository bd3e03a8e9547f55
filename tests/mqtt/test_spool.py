"""The SQLite spool on real files: order across restarts, bounds, full disk, bad directories."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from emopi.edge.errors import EmopiError
from emopi.edge.mqtt.spool import Spool


def rows(spool: Spool) -> list[str]:
    return [payload for _, payload in spool.pending(limit=10**6)]


def test_order_survives_reopen_even_after_the_newest_rows_were_deleted(tmp_path):
    path = tmp_path / "s.db"
    spool = Spool(path)
    ids = [spool.append(f"e{i}") for i in range(5)]
    assert ids == sorted(ids) and 0 not in ids
    spool.delete(ids[3:])  # the newest are gone: a plain rowid would hand their ids out again
    spool.close()
    spool = Spool(path)
    new = spool.append("e5")
    assert new > ids[-1]
    assert rows(spool) == ["e0", "e1", "e2", "e5"]
    assert spool.pending(after=ids[1], limit=1) == [(ids[2], "e2")]
    spool.close()


def test_bounded_drop_oldest_counts_and_persists_drops(tmp_path):
    path = tmp_path / "s.db"
    spool = Spool(path, max_events=3)
    for i in range(7):
        assert spool.append(f"e{i}")
    assert rows(spool) == ["e4", "e5", "e6"]
    assert (spool.depth, spool.dropped) == (3, 4)
    spool.close()
    spool = Spool(path, max_events=3)
    assert (spool.depth, spool.dropped) == (3, 4)
    spool.close()


def test_full_disk_drops_oldest_and_never_raises(tmp_path, caplog):
    spool = Spool(tmp_path / "s.db", max_events=10**6, max_bytes=64 * 1024)
    payload = "x" * 400
    for i in range(1000):
        assert spool.append(f"{i:04d}{payload}") > 0  # room is made each time
    kept = rows(spool)
    assert spool.dropped > 0 and spool.depth == len(kept) == 1000 - spool.dropped
    assert [int(p[:4]) for p in kept] == list(range(spool.dropped, 1000))  # the newest stay
    assert "dropped" in caplog.text
    spool.close()


def test_kill9_keeps_committed_rows(tmp_path):
    path = tmp_path / "s.db"
    code = (
        "import os, signal\n"
        "from emopi.edge.mqtt.spool import Spool\n"
        f"s = Spool({str(path)!r})\n"
        "for i in range(50): s.append(str(i))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert proc.returncode == -9
    spool = Spool(path)
    assert rows(spool) == [str(i) for i in range(50)]
    spool.close()


def test_unusable_state_dir_is_one_clear_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(EmopiError) as err:
        Spool(tmp_path / "a-file" / "state" / "s.db")
    assert "\n" not in str(err.value)
    assert "cannot create the state directory" in str(err.value) and "a-file" in str(err.value)


SECOND_PROCESS = """
import sys
from emopi.edge.errors import EmopiError
from emopi.edge.mqtt.spool import Spool
try:
    Spool(sys.argv[1]).close()
except EmopiError as exc:
    print(exc)
else:
    print("opened")
"""


def test_a_second_process_on_the_same_spool_is_refused(tmp_path):
    def second_process() -> str:
        cmd = [sys.executable, "-c", SECOND_PROCESS, str(tmp_path / "s.db")]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
        return out.stdout.strip()

    first = Spool(tmp_path / "s.db")
    assert "in use by another emopi process" in second_process()
    with pytest.raises(EmopiError, match="in use by another emopi process"):
        Spool(tmp_path / "s.db")  # nor a second spool in this one
    first.close()
    assert second_process() == "opened"  # free again


def test_corrupt_spool_is_moved_aside_and_replaced(tmp_path, caplog):
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not sqlite" * 100)
    spool = Spool(path)
    assert spool.depth == 0 and spool.append(json.dumps({"seq": 1})) > 0
    spool.close()
    aside = list(tmp_path.glob("s.db.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not sqlite")
    assert "moved to" in caplog.text
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_rows_keep_their_broker_and_old_spools_still_drain(tmp_path):
    path = tmp_path / "spool.sqlite3"
    with sqlite3.connect(path) as db:  # a spool written before brokers were recorded
        db.executescript(
            "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL);"
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
            "INSERT INTO meta VALUES ('dropped', 0);"
            "INSERT INTO events (payload) VALUES ('old');"
        )
    db.close()
    a = Spool(path, broker="a.lan:1883")
    assert a.append("for-a") and [p for _, p in a.pending()] == ["old", "for-a"]
    a.close()
    b = Spool(path, broker="b.lan:1883")
    assert (b.depth, b.held) == (1, 1) and [p for _, p in b.pending()] == ["old"]
    b.append("for-b")
    assert [p for _, p in b.pending()] == ["old", "for-b"]
    b.close()
    everything = Spool(path)  # inspection: every row
    assert [p for _, p in everything.pending()] == ["old", "for-a", "for-b"]
    assert everything.held == 0
    everything.close()
