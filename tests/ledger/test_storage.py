"""LmdbAtomicDB: the py-evm AtomicDatabaseAPI on LMDB, its atomic batches and crash durability."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ledger.storage import LmdbAtomicDB

ROOT = Path(__file__).resolve().parents[2]
SMALL_MAP = 64 * 1024 * 1024


@pytest.fixture
def db(tmp_path):
    database = LmdbAtomicDB(tmp_path / "db", map_size=SMALL_MAP)
    yield database
    database.close()


def test_set_get_delete_exists(db):
    db[b"k"] = b"v"
    assert db[b"k"] == b"v"
    assert isinstance(db[b"k"], bytes)
    assert db.exists(b"k")
    assert b"k" in db
    db[b"k"] = b"v2"
    assert db[b"k"] == b"v2"
    del db[b"k"]
    assert not db.exists(b"k")
    with pytest.raises(KeyError):
        db[b"k"]


def test_missing_key_errors(db):
    with pytest.raises(KeyError):
        db[b"missing"]
    with pytest.raises(KeyError):
        del db[b"missing"]
    assert db.get(b"missing") is None
    assert not db.exists(b"missing")


def test_empty_value_is_stored(db):
    db[b"empty"] = b""
    assert db[b"empty"] == b""
    assert db.exists(b"empty")


def test_atomic_batch_commits_everything(db):
    db[b"old"] = b"x"
    with db.atomic_batch() as batch:
        batch[b"a"] = b"1"
        batch[b"b"] = b"2"
        del batch[b"old"]
        # reads inside the batch see its pending writes
        assert batch[b"a"] == b"1"
        # the database does not, until the batch commits
        assert not db.exists(b"a")
    assert db[b"a"] == b"1"
    assert db[b"b"] == b"2"
    assert not db.exists(b"old")


def test_atomic_batch_discards_everything_when_body_raises(db):
    db[b"keep"] = b"x"
    with pytest.raises(RuntimeError, match="boom"):
        with db.atomic_batch() as batch:
            batch[b"a"] = b"1"
            batch[b"b"] = b"2"
            del batch[b"keep"]
            raise RuntimeError("boom")
    assert not db.exists(b"a")
    assert not db.exists(b"b")
    assert db[b"keep"] == b"x"


def test_batch_unusable_after_exit(db):
    with db.atomic_batch() as batch:
        batch[b"a"] = b"1"
    with pytest.raises(Exception):  # noqa: B017 - py-evm raises ValidationError on a finished batch
        batch[b"b"] = b"2"
    assert not db.exists(b"b")


def test_put_many(db):
    db.put_many({b"x": b"1", b"y": b"2"})
    assert (db[b"x"], db[b"y"]) == (b"1", b"2")


def test_data_survives_close_and_reopen(tmp_path):
    path = tmp_path / "db"
    first = LmdbAtomicDB(path, map_size=SMALL_MAP)
    first[b"single"] = b"1"
    with first.atomic_batch() as batch:
        for i in range(100):
            batch[b"k%d" % i] = b"v%d" % i
    first.close()
    second = LmdbAtomicDB(path, map_size=SMALL_MAP)
    try:
        assert second[b"single"] == b"1"
        assert all(second[b"k%d" % i] == b"v%d" % i for i in range(100))
    finally:
        second.close()


CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from ledger.storage import LmdbAtomicDB
    db = LmdbAtomicDB({path!r}, map_size={map_size})
    db[b"doomed"] = b"x"
    with db.atomic_batch() as batch:
        for i in range(2000):
            batch[b"key-%d" % i] = b"value-%d" % i * 10
        del batch[b"doomed"]
    with db.atomic_batch() as batch:
        batch[b"never"] = b"1"
        os.kill(os.getpid(), signal.SIGKILL)
""")


def test_atomic_batch_survives_sigkill(tmp_path):
    """A process killed right after atomic_batch returned leaves that batch whole, and a batch in flight absent."""
    path = tmp_path / "db"
    script = CHILD.format(root=str(ROOT), path=str(path), map_size=SMALL_MAP)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    db = LmdbAtomicDB(path, map_size=SMALL_MAP)
    try:
        assert all(db[b"key-%d" % i] == b"value-%d" % i * 10 for i in range(2000))
        assert not db.exists(b"doomed")
        assert not db.exists(b"never")
    finally:
        db.close()
