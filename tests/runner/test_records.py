"""Atomic record writing and checkpoint loading with clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from gsprune.checkpoints import CheckpointError, file_lock, load_checked, save_atomic
from gsprune.records import SCHEMA, read_record, write_record


def test_write_record_round_trip_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "records" / "abc.json"
    write_record(path, {"schema": SCHEMA, "run_id": "abc", "value": 1.5})
    assert read_record(path)["value"] == 1.5
    assert os.listdir(path.parent) == ["abc.json"]


def test_failed_write_keeps_the_old_record(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    write_record(path, {"schema": SCHEMA, "run_id": "r", "value": 1})

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_record(path, {"schema": SCHEMA, "run_id": "r", "value": 2})
    assert read_record(path)["value"] == 1
    assert os.listdir(tmp_path) == ["r.json"]


def test_read_record_names_a_broken_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(ValueError, match="bad.json"):
        read_record(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": 99}))
    with pytest.raises(ValueError, match="schema"):
        read_record(other)


def test_checkpoint_round_trip(tmp_path):
    path = save_atomic({"key": "k1", "model": {"w": torch.ones(3)}}, tmp_path / "c.pt")
    assert torch.equal(load_checked(path, "k1")["model"]["w"], torch.ones(3))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other_key"])
def test_damaged_checkpoint_raises_checkpoint_error(tmp_path, damage):
    path = save_atomic({"key": "k1", "model": {"w": torch.ones(1000)}}, tmp_path / "c.pt")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"\x00garbage" * 50)
    else:
        save_atomic({"key": "k2"}, path)
    with pytest.raises(CheckpointError, match="c.pt"):
        load_checked(path, "k1")


def _try_lock_elsewhere(lock) -> int:
    """Exit status of another process that tries to take ``lock`` without waiting."""
    code = (
        "import fcntl, sys\n"
        f"h = open({str(lock)!r}, 'a+')\n"
        "try:\n    fcntl.flock(h.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n    sys.exit(3)\n"
    )
    return subprocess.run([sys.executable, "-c", code], timeout=30).returncode


def test_file_lock_excludes_other_processes_until_released(tmp_path):
    lock = tmp_path / "x.lock"
    with file_lock(lock):
        assert _try_lock_elsewhere(lock) == 3
    assert _try_lock_elsewhere(lock) == 0
