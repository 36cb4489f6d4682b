"""A tiny `jaxdiv study` killed with SIGKILL at successive points, rerun after each kill, ends
with the same analysis, representation, store, report and member records as an uninterrupted
run of the same config.

The kill points are found by polling the workdir for the files each stage writes (no hooks in
the library). One process runs the study uninterrupted while another is killed at the first
point it reaches, restarted, killed at the next point, and so on; the last restart runs to the
end. A point whose window the poll can miss (a few milliseconds wide) is optional: it is
killed at when seen, and the required points must all have been hit.

Compared after the last run (bytes, after the normalisation below):
``analysis/``, ``representation/``, ``report/`` (HTML and PNGs), every file of ``store/``
(logits, embeddings, labels, ids, ``split.json``, ``done.json``, ``member.json``),
``members/<name>/{config,result}.json`` and ``metrics.jsonl``, ``population.json``,
``failures.json`` and ``study.json``. Normalised, because they depend on the run and not on the
results: the workdir path is written as ``WORKDIR`` (``member.json``'s ``workdir``,
``study.json``'s ``report``); dropped: ``study.json``'s ``seconds``, ``represent.json``'s
``seconds``, ``train_seconds_this_run`` (``result.json``, ``member.json``'s metrics) and
``time``/``images_per_sec`` of each ``metrics.jsonl`` line. Not compared: checkpoints, the
TensorBoard event files (wall-clock times) and the ``.jax_cache`` compilation cache; the lock
files of the store and workdir (hidden, empty once released, holding a killed holder's pid).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import ml_collections
import pytest

from jaxdiv.store.predict import predict_member
from jaxdiv.store.splits import store_split_name
from jaxdiv.store.store import Store
from tests.support import tiny_config

pytestmark = pytest.mark.usefixtures("tfds_dir")
ROOT = Path(__file__).resolve().parents[1]
NUM_STEPS = 12
POLL_SECONDS = 0.005
RUN_TIMEOUT = 600.0
SPLITS = ("train[45000:45200]", "test[:200]")


def get_config() -> ml_collections.ConfigDict:
    """Two members (base and a reseeded one), each checkpointed at steps 4, 8 and 12."""
    pop = ml_collections.ConfigDict()
    pop.name = "faults"
    pop.base = tiny_config(num_steps=NUM_STEPS, checkpoint_every_steps=4, **{"data.eval_split": ""})
    pop.splits = list(SPLITS)
    pop.analysis = ml_collections.ConfigDict(
        {"split": SPLITS[1], "calibration_split": SPLITS[0], "bootstrap": 5}
    )
    pop.represent = ml_collections.ConfigDict(
        {"n_seeds": 1, "c_grid": (1.0,), "max_iter": 10, "transfer": "none", "keep": (4,)}
    )
    pop.variations = [{"overrides": {"seed": 1}}]
    return pop


# ------------------------------------------------------------------------------ kill points
def _any(folder: Path, pattern: str) -> bool:
    return folder.is_dir() and any(True for _ in folder.glob(pattern))


def _stagings(workdir: Path, pid: int) -> list[Path]:
    """The publication staging folders written by process ``pid`` (its writer marker)."""
    found = []
    for staging in workdir.glob(".publish.tmp-*"):
        try:
            if json.loads((staging / "writer.json").read_text())["pid"] == pid:
                found.append(staging)
        except (OSError, ValueError, KeyError):
            continue
    return found


def _done_splits(workdir: Path, member: str) -> int:
    return sum(1 for _ in (workdir / "store" / "members" / member).glob("*/done.json"))


@dataclasses.dataclass(frozen=True)
class Point:
    name: str
    reached: Callable[[Path, int], bool]  # (workdir, pid of the running study)
    required: bool = True


POINTS = (
    Point(
        "train: tiny's first checkpoint appears",
        lambda w, pid: _any(w / "members" / "tiny" / "checkpoints", "*"),
    ),
    Point(
        "train: tiny's final checkpoint, before its predict",
        lambda w, pid: (
            (w / "members" / "tiny" / "checkpoints" / str(NUM_STEPS)).is_dir()
            and not _any(w / "store" / "splits", "*")
        ),
        required=False,
    ),
    Point(
        "predict: tiny's first store split appears",
        lambda w, pid: _any(w / "store" / "splits", "*") and _done_splits(w, "tiny") == 0,
    ),
    Point(
        "train: seed1's first checkpoint appears",
        lambda w, pid: _any(w / "members" / "seed1" / "checkpoints", "*"),
    ),
    Point(
        "predict: seed1 between its two splits",
        lambda w, pid: _done_splits(w, "seed1") == 1,
        required=False,
    ),
    Point(
        "analysis: the publication's staging folder appears",
        lambda w, pid: any(not (s / "analysis").exists() for s in _stagings(w, pid)),
    ),
    Point(
        "representation: analysis staged, representation running",
        lambda w, pid: any(
            (s / "analysis").is_dir() and not (s / "representation").exists()
            for s in _stagings(w, pid)
        ),
    ),
    Point(
        "report: its first figure appears in its staging folder",
        lambda w, pid: any(_any(s, ".report.tmp-*/*.png") for s in _stagings(w, pid)),
    ),
    Point(
        "publication: manifest written, folders being renamed",
        lambda w, pid: any((s / "publish.json").exists() for s in _stagings(w, pid)),
        required=False,
    ),
)


def _start(workdir: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jaxdiv",
                "study",
                f"--config={Path(__file__).resolve()}",
                f"--workdir={workdir}",
                "--noprogress",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed whole
        )


def _wait(proc: subprocess.Popen, log: Path) -> None:
    try:
        proc.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, log.read_text()[-4000:]


@dataclasses.dataclass
class KilledRun:
    hit: list[str] = dataclasses.field(default_factory=list)
    missed: list[str] = dataclasses.field(default_factory=list)
    starts: int = 0


def _run_killed_repeatedly(workdir: Path, log: Path) -> KilledRun:
    """Start the study, SIGKILL it at the first remaining point it reaches, restart; the
    points it passed without being seen are ``missed``. The last start runs to the end."""
    record, remaining = KilledRun(), list(POINTS)
    while True:
        proc = _start(workdir, log)
        record.starts += 1
        deadline = time.monotonic() + RUN_TIMEOUT
        reached = None
        while remaining and proc.poll() is None and time.monotonic() < deadline:
            reached = next(
                (i for i, p in enumerate(remaining) if p.reached(workdir, proc.pid)), None
            )
            if reached is not None:
                break
            time.sleep(POLL_SECONDS)
        if reached is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            with open(log, "a") as f:
                f.write(f"\n=== SIGKILL at: {remaining[reached].name}\n")
            record.missed += [p.name for p in remaining[:reached]]
            record.hit.append(remaining[reached].name)
            remaining = remaining[reached + 1 :]
            continue
        _wait(proc, log)
        record.missed += [p.name for p in remaining]
        return record


# ------------------------------------------------------------------------------ comparison
RUN_DEPENDENT_KEYS = {
    "study.json": ("seconds",),
    "representation/represent.json": ("seconds",),
    "result.json": ("train_seconds_this_run",),
    "member.json": ("metrics.train_seconds_this_run",),
}
METRICS_LINE_KEYS = ("time", "images_per_sec")


def _drop(obj: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        obj = obj.get(key, {})
    obj.pop(leaf, None)


def _normalised(workdir: Path, rel: str) -> bytes:
    path = workdir / rel
    data = path.read_bytes()
    if path.suffix not in (".json", ".jsonl", ".csv", ".html"):
        return data
    text = data.decode().replace(str(workdir), "WORKDIR")
    if path.name == "metrics.jsonl":
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        for line in lines:
            for key in METRICS_LINE_KEYS:
                line.pop(key, None)
        return json.dumps(lines, sort_keys=True).encode()
    drops = RUN_DEPENDENT_KEYS.get(rel) or RUN_DEPENDENT_KEYS.get(path.name)
    if drops:
        obj = json.loads(text)
        for dotted in drops:
            _drop(obj, dotted)
        text = json.dumps(obj, sort_keys=True)
    return text.encode()


def _compared_files(workdir: Path) -> list[str]:
    rels = []
    for name in ("analysis", "representation", "report", "store"):
        rels += [
            str(p.relative_to(workdir))
            for p in (workdir / name).rglob("*")
            if p.is_file() and not p.name.startswith(".")
        ]
    for member in ("tiny", "seed1"):
        rels += [f"members/{member}/{f}" for f in ("config.json", "result.json", "metrics.jsonl")]
    rels += ["population.json", "failures.json", "study.json"]
    return sorted(rels)


def _leftovers(workdir: Path) -> list[str]:
    """Hidden folders (temporary or staging) anywhere but the compilation cache."""
    return sorted(
        str(p.relative_to(workdir))
        for p in workdir.rglob(".*")
        if p.is_dir() and p.name != ".jax_cache" and ".jax_cache" not in p.parts
    )


@pytest.mark.slow
def test_a_study_killed_at_every_stage_and_rerun_equals_an_uninterrupted_one(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    clean_log, killed_log = tmp_path / "clean.log", tmp_path / "killed.log"
    reference = _start(clean, clean_log)  # runs beside the killed one (each uses ~1 core)
    try:
        record = _run_killed_repeatedly(killed, killed_log)
    finally:
        _wait(reference, clean_log)

    required = [p.name for p in POINTS if p.required]
    assert set(required) <= set(record.hit), (record, killed_log.read_text()[-4000:])
    assert record.starts == len(record.hit) + 1

    files = _compared_files(clean)
    print(f"kill points hit: {record.hit}; missed: {record.missed}; starts: {record.starts}")
    assert _compared_files(killed) == files
    assert any(f.endswith("logits.npy") for f in files) and "report/index.html" in files
    different = [f for f in files if _normalised(clean, f) != _normalised(killed, f)]
    assert different == [], (record, different)
    assert _leftovers(killed) == [] and _leftovers(clean) == []
    assert not (killed / "store" / "superseded").exists()
    assert json.loads((killed / "failures.json").read_text()) == {}


# ------------------------------------------------------- predict killed inside one member
class Killed(BaseException):
    """Stands for SIGKILL inside one process: nothing after it runs, no handler catches it."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from jaxdiv.train.loop import train

    workdir = tmp_path_factory.mktemp("member")
    config = tiny_config(num_steps=2, **{"data.eval_split": ""})
    train(config, workdir, progress=False)
    reference = workdir.parent / "reference-store"
    predict_member(config, workdir, reference, list(SPLITS))
    return config, workdir, reference


@pytest.mark.parametrize("kill_in", ["write_member", "write_member_info"])
def test_predict_killed_between_a_split_and_member_json_is_completed_by_the_rerun(
    trained, tmp_path, monkeypatch, kill_in
):
    """Killed after the first split (``write_member``: the second split's write never runs)
    or after the last one (``write_member_info``: the final member.json is never written):
    the rerun's member.json equals an uninterrupted predict's, every split's accuracy
    included."""
    config, workdir, reference = trained
    original, calls = getattr(Store, kill_in), []

    def killed(self, *args, **kwargs):
        calls.append(kill_in)
        if len(calls) == 1:  # the first split (write_member_info: its member.json)
            return original(self, *args, **kwargs)
        raise Killed

    monkeypatch.setattr(Store, kill_in, killed)
    with pytest.raises(Killed):
        predict_member(config, workdir, tmp_path / "store", list(SPLITS))
    monkeypatch.undo()
    store = Store(tmp_path / "store")
    assert store.member_info("tiny").get("config_hash")  # never an anonymous member
    predict_member(config, workdir, store.root, list(SPLITS))
    expected = Store(reference).member_info("tiny")
    assert store.member_info("tiny") == expected
    assert {f"{store_split_name(s)}_accuracy" for s in SPLITS} <= set(expected["metrics"])
    assert predict_member(config, workdir, store.root, list(SPLITS)) == {}
