"""Training metrics to ``WORKDIR/metrics.jsonl`` and TensorBoard event files.

A run resumed from the checkpoint of step ``S`` first forgets what it logged after ``S``: the
lines of metrics.jsonl with a larger step are dropped, and the TensorBoard writer starts with
``purge_step=S + 1``, which makes TensorBoard hide the earlier events of steps ``>= S + 1``
(the steps the resumed run logs again). Events at ``S`` itself stay, as the jsonl lines do.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


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
        kept = [
            line
            for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
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


def read_metrics(workdir: str | Path) -> list[dict]:
    path = Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def latest_values(records: list[dict], *, up_to: int) -> dict[str, float]:
    """Each metric's last logged value at a step ``<= up_to`` (what a resumed run had seen)."""
    out: dict[str, float] = {}
    for r in records:
        if r.get("step", 0) <= up_to:
            out.update({k: v for k, v in r.items() if k not in ("step", "time")})
    return out
