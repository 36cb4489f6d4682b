"""Training metrics to ``WORKDIR/metrics.jsonl`` and TensorBoard event files.

A run resumed from the checkpoint of step ``S`` first forgets what it logged after ``S``: the
lines of metrics.jsonl with a larger step are dropped, and the TensorBoard writer starts with
``purge_step=S + 1``, which makes TensorBoard hide the earlier events of steps ``>= S + 1``
(the steps the resumed run logs again). Events at ``S`` itself stay, as the jsonl lines do.

A checkpoint taken between two log steps also records the per-step metrics gathered since the
last line (``WORKDIR/metrics_pending.json``, written before the checkpoint, one entry per
checkpoint step), so the line a resumed run writes at the next log step averages the same
steps with the same float32 values as an uninterrupted run's.

``final_metrics`` reads a finished run's ``result.json`` and fills in the ``train_*`` values a
run killed before writing it lost, from the last lines of metrics.jsonl.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from jaxdiv.files import write_json_atomic

PENDING_FILE = "metrics_pending.json"


class MetricWriter:
    """Appends ``{"step": s, ...}`` lines to metrics.jsonl and scalars to TensorBoard.

    ``enabled=False`` (every process but the main one) writes nothing.
    """

    def __init__(self, workdir: str | Path, *, resume_step: int = 0, enabled: bool = True):
        self.path = Path(workdir) / "metrics.jsonl"
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        self._drop_after(resume_step)
        from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(
            str(Path(workdir) / "tensorboard"), flush_secs=30, purge_step=int(resume_step) + 1
        )

    def _drop_after(self, step: int) -> None:
        """On resume, forget lines logged after the checkpoint we restart from."""
        if not self.path.exists():
            return
        kept = [json.dumps(r) for r in _records(self.path) if r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, self.path)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        values = {k: float(v) for k, v in metrics.items()}
        record = {"step": int(step), "time": time.time(), **values}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        for k, v in metrics.items():
            self._tb.add_scalar(k, float(v), int(step))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _records(path: Path) -> list[dict]:
    """The lines of a metrics.jsonl; a last line cut short by a kill mid-append is dropped."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i != len(lines) - 1:
                raise
    return out


def read_metrics(workdir: str | Path) -> list[dict]:
    path = Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    return _records(path)


def latest_values(records: list[dict], *, up_to: int) -> dict[str, float]:
    """Each metric's last logged value at a step ``<= up_to`` (what a resumed run had seen)."""
    out: dict[str, float] = {}
    for r in records:
        if r.get("step", 0) <= up_to:
            out.update({k: v for k, v in r.items() if k not in ("step", "time")})
    return out


def save_pending(
    workdir: str | Path, step: int, rows: list[dict[str, np.ndarray]], keep: Iterable[int]
) -> None:
    """Record ``rows`` (one dict of scalar metrics per step since the last log line) as the
    pending metrics of checkpoint ``step``; entries of steps not in ``keep`` are dropped."""
    path = Path(workdir) / PENDING_FILE
    entries = _read_pending(path)
    keep = {int(s) for s in keep} | {int(step)}
    entries = {k: v for k, v in entries.items() if int(k) in keep}
    dtypes = {n: str(np.asarray(v).dtype) for n, v in rows[0].items()} if rows else {}
    values = [{n: float(np.asarray(v)) for n, v in r.items()} for r in rows]
    entries[str(int(step))] = {"dtypes": dtypes, "rows": values}
    write_json_atomic(path, entries)


def load_pending(workdir: str | Path, step: int) -> list[dict[str, np.ndarray]] | None:
    """The per-step metrics pending at checkpoint ``step`` (in their saved dtypes), or None
    when none were recorded."""
    entry = _read_pending(Path(workdir) / PENDING_FILE).get(str(int(step)))
    if not isinstance(entry, dict):
        return None
    dtypes = entry.get("dtypes", {})
    return [
        {n: np.asarray(v, dtype=dtypes.get(n, "float32")) for n, v in row.items()}
        for row in entry.get("rows", [])
    ]


def _read_pending(path: Path) -> dict:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def final_metrics(workdir: str | Path, step: int | None = None) -> dict:
    """``result.json`` with the ``train_*`` metrics it lacks (a run killed between its final
    checkpoint and result.json) taken from metrics.jsonl up to ``step`` (default: all)."""
    path = Path(workdir) / "result.json"
    try:
        result = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        result = {}
    result = result if isinstance(result, dict) else {}
    records = read_metrics(workdir)
    if step is None:
        step = max((int(r.get("step", 0)) for r in records), default=0)
    logged = latest_values(records, up_to=int(step))
    for key, value in logged.items():
        if key.startswith("train_") and key not in result:
            result[key] = value
    return result
