"""The run directory: its config record and the guard against mixing two runs."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import ml_collections

from jaxdiv.errors import JaxdivError
from jaxdiv.files import write_json_atomic
from jaxdiv.train.checkpoint import has_checkpoint

# Keys that change how a run is executed or logged, not what it computes.
RUNTIME_KEYS = (
    "log_every_steps",
    "eval_every_steps",
    "eval_batch_size",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "data.data_dir",
    "mesh",
)
RUN_FILES = (
    "checkpoints",
    "metrics.jsonl",
    "metrics_pending.json",
    "tensorboard",
    "config.json",
    "result.json",
    "store",
    "offline_probe",
)
"""What ``--force`` moves to ``WORKDIR/superseded/<time>/``: the run and what was made from
it (its prediction store ``WORKDIR/store`` and its offline probe)."""


def config_to_dict(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json_best_effort())


def strip_runtime(d: dict) -> dict:
    """A copy of the config dict ``d`` without the keys in ``RUNTIME_KEYS``."""
    d = json.loads(json.dumps(d))
    for key in RUNTIME_KEYS:
        *parents, leaf = key.split(".")
        node = d
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return d


def differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """``key: a -> b`` for every (dotted) key whose value differs between two dicts."""
    out = []
    for k in sorted(set(a) | set(b)):
        ka = f"{prefix}{k}"
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out += differences(a[k], b[k], ka + ".")
        elif a.get(k) != b.get(k):
            out.append(f"{ka}: {a.get(k)!r} -> {b.get(k)!r}")
    return out


def config_differences(old: dict, new: ml_collections.ConfigDict | dict) -> list[str]:
    """``key: old -> new`` for every key that differs, run-time keys left out."""
    new = new if isinstance(new, dict) else config_to_dict(new)
    return differences(strip_runtime(old), strip_runtime(new))


def check_workdir(workdir: Path) -> None:
    """Refuse a workdir that is a file, or lies under one, before anything is created."""
    for p in (Path(workdir), *Path(workdir).parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == Path(workdir) else f"lies under {p}, which is a file"
                raise JaxdivError(
                    f"--workdir {workdir} {what}; pass a folder path (new or a run's)"
                )
            return


def prepare_workdir(config: ml_collections.ConfigDict, workdir: Path, *, force: bool) -> None:
    """Record the config; refuse a workdir whose checkpoints come from a different config.

    With ``force`` the old run's files are moved to ``WORKDIR/superseded/<time>/``, never
    deleted.
    """
    check_workdir(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.json"
    new = config_to_dict(config)
    if path.exists() and has_checkpoint(workdir):
        old = json.loads(path.read_text())
        diff = config_differences(old, new)
        if diff:
            if not force:
                shown = "; ".join(diff[:4]) + (" ..." if len(diff) > 4 else "")
                raise JaxdivError(
                    f"{workdir} holds checkpoints of a different config ({shown}); use another "
                    "--workdir, or --force to move the old run to WORKDIR/superseded/"
                )
            supersede_run(workdir)
    write_json_atomic(path, new)


def supersede_run(workdir: Path) -> Path:
    """Move a run's files to ``WORKDIR/superseded/<time>/`` (never deleted); returns it."""
    dest = Path(workdir) / "superseded" / time.strftime("%Y%m%d-%H%M%S")
    dest.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (Path(workdir) / name).exists():
            shutil.move(str(Path(workdir) / name), str(dest / name))
    return dest


def load_config(workdir: Path) -> ml_collections.ConfigDict:
    path = Path(workdir) / "config.json"
    if not path.exists():
        raise JaxdivError(f"{workdir} has no config.json; train there first or pass --config")
    return ml_collections.ConfigDict(json.loads(path.read_text()))
