"""Concurrent writers of one store: two processes importing the same member (exactly one
succeeds, the other is refused in one line, the store stays whole), the clean-up of leftover
temporary folders (only a dead writer's are removed) and member.json updates under its lock."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from jaxdiv.errors import JaxdivError
from jaxdiv.store import Store, import_predictions

ROOT = Path(__file__).resolve().parents[1]
TRIALS = 40

# Reads "delay store split labels model" lines; answers one JSON line per import.
_IMPORTER = r"""
import json, sys, time, traceback
from jaxdiv.errors import JaxdivError
from jaxdiv.store import import_predictions
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    delay, store, split, labels, model = line.split()
    end = time.perf_counter() + float(delay)
    while time.perf_counter() < end:
        pass
    try:
        out = {"ok": import_predictions(store, split, labels, [model])}
    except JaxdivError as e:
        out = {"refused": str(e)}
    except BaseException:
        out = {"error": traceback.format_exc()}
    print(json.dumps(out), flush=True)
"""

# Holds the lock of members/m/<split>, stages a folder as a writer does, then waits.
_HOLDER = r"""
import sys
from pathlib import Path
from jaxdiv.store import Store
store = Store(sys.argv[1])
with store.lock_member_split("m", "test"):
    tmp = store.member_dir("m") / ".test.tmp-live1234"
    tmp.mkdir()
    (tmp / "logits.npy").write_bytes(b"half written")
    print("ready", flush=True)
    sys.stdin.readline()
"""

# Adds its own key to member.json N times, each a read-change-write under the member.json lock.
_UPDATER = r"""
import sys
from jaxdiv.store import Store
store, who, n = Store(sys.argv[1]), sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()
for i in range(n):
    with store.lock_member_info("m"):
        info = store.member_info("m")
        info[f"{who}{i}"] = i
        store.write_member_info("m", info)
print("done", flush=True)
"""


class _Worker:
    """A Python subprocess running ``script``, talked to by lines on stdin/stdout."""

    def __init__(self, script: str, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def receive(self, timeout: float = 60) -> str:
        line = self.lines.get(timeout=timeout)
        assert line, f"worker exited with {self.proc.wait()}"
        return line.strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _labels(path: Path, m: int = 20, c: int = 5) -> np.ndarray:
    ids = np.array([f"img{i}" for i in range(m)])
    np.savez(path, ids=ids, labels=np.arange(m) % c)
    return ids


def _model(path: Path, ids: np.ndarray, value: float, c: int = 5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, ids=ids, logits=np.full((len(ids), c), float(value)))
    return path


def _assert_whole(store: Store, name: str, value: float) -> None:
    """``name`` is finished for 'test' with the winner's logits and nothing half-written."""
    assert name in store.members("test")
    np.testing.assert_array_equal(store.member_logits(name, "test"), np.full((20, 5), value))
    assert store.member_info(name)["source"] == "imported"
    member_dir = store.root / "members" / name
    assert sorted(p.name for p in member_dir.iterdir()) == [
        ".member.json.lock",
        ".test.lock",
        "member.json",
        "test",
    ]
    assert sorted(p.name for p in (member_dir / "test").iterdir()) == ["done.json", "logits.npy"]
    assert store.logits("test").shape[1:] == (20, 5)


def test_two_processes_importing_one_member_race(tmp_path):
    """Each trial starts both imports together (the second after 0-3.2 ms, so the race hits
    every phase: validation, the split, the lock, the publish); exactly one succeeds."""
    workers = [_Worker(_IMPORTER), _Worker(_IMPORTER)]
    try:
        for w in workers:
            assert json.loads(w.receive())["ready"]
        refusals: Counter[str] = Counter()
        for trial in range(TRIALS):
            base = tmp_path / f"t{trial}"
            base.mkdir()
            ids = _labels(base / "labels.npz")
            store_dir = base / "store"
            if trial % 3 >= 1:  # the split exists already
                import_predictions(
                    store_dir, "test", base / "labels.npz", [_model(base / "first.npz", ids, 0)]
                )
            if trial % 3 == 2:  # and a killed writer of the member left a staged folder
                (store_dir / "members" / "m" / ".test.tmp-dead0001").mkdir(parents=True)
            models = [_model(base / w / "m.npz", ids, v) for w, v in (("a", 1.0), ("b", 2.0))]
            delays = [0.0, 0.0008 * (trial % 5)]
            if trial % 2:
                delays.reverse()
            for w, d, model in zip(workers, delays, models, strict=True):
                w.send(f"{d} {store_dir} test {base / 'labels.npz'} {model}")
            outs = [json.loads(w.receive()) for w in workers]
            assert not [o for o in outs if "error" in o], outs
            winners = [i for i, o in enumerate(outs) if "ok" in o]
            assert len(winners) == 1, (trial, outs)
            refused = outs[1 - winners[0]]["refused"]
            assert "\n" not in refused and "'m'" in refused, refused
            refusals["being written" if "being written" in refused else "already has"] += 1
            _assert_whole(Store(store_dir), "m", 1.0 + winners[0])
    finally:
        for w in workers:
            w.close()
    print(f"{TRIALS} races, refusals: {dict(refusals)}")


def test_live_writers_folder_survives_and_dead_writers_is_removed(tmp_path):
    store = Store(tmp_path / "store")
    ids = np.array([f"e{i}" for i in range(4)])
    store.write_split("test", np.arange(4) % 2, ids)
    store.write_split("test-x", np.arange(4) % 2, ids)
    holder = _Worker(_HOLDER, str(store.root))
    try:
        assert holder.receive() == "ready"
        live = store.root / "members" / "m" / ".test.tmp-live1234"
        with pytest.raises(
            JaxdivError, match=f"being written by another process .pid {holder.proc.pid} on"
        ):
            store.write_member("m", "test", np.zeros((4, 2)))
        assert (live / "logits.npy").exists()
        # a writer of another split of the member cleans only that split's leftovers
        dead_x = store.root / "members" / "m" / ".test-x.tmp-dead0001"
        dead_x.mkdir()
        store.write_member("m", "test-x", np.zeros((4, 2)))
        assert live.exists() and not dead_x.exists()
        assert store.members("test-x") == ["m"] and store.members("test") == []
        holder.proc.send_signal(signal.SIGKILL)  # the writer dies mid-write
        assert holder.proc.wait() == -signal.SIGKILL
    finally:
        holder.close()
    store.write_member("m", "test", np.ones((4, 2)))
    assert not live.exists()
    np.testing.assert_array_equal(store.member_logits("m", "test"), np.ones((4, 2)))
    assert [p.name for p in (store.root / "members" / "m").glob(".test*") if p.is_dir()] == []


def test_member_json_updates_from_two_processes_are_all_kept(tmp_path):
    store = Store(tmp_path / "store")
    store.write_member_info("m", {"metrics": {}})
    n = 60
    workers = [_Worker(_UPDATER, str(store.root), who, str(n)) for who in ("a", "b")]
    try:
        for w in workers:
            assert w.receive() == "ready"
        for w in workers:
            w.send("go")
        for w in workers:
            assert w.receive() == "done"
    finally:
        for w in workers:
            w.close()
    info = store.member_info("m")
    assert sorted(k for k in info if k[0] in "ab") == sorted(
        f"{who}{i}" for who in "ab" for i in range(n)
    )


def test_lock_is_reentrant_in_a_thread_and_exclusive_between_threads(tmp_path):
    store = Store(tmp_path / "store")
    errors = []
    with store.lock_member_split("m", "test"), store.lock_member_split("m", "test"):

        def other():
            try:
                with store.lock_member_split("m", "test"):
                    pass
            except JaxdivError as e:
                errors.append(str(e))

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1 and f"pid {os.getpid()}" in errors[0]
    with store.lock_member_split("m", "test"):  # released after the outer block
        pass
