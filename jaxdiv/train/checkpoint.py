"""Orbax checkpoints in ``WORKDIR/checkpoints`` with auto-resume.

Orbax writes each step into a temporary folder and renames it when complete, so a run killed
mid-save leaves the previous checkpoint intact and the next start resumes from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    """Save every ``every_steps`` steps (and on demand), keep the last ``keep``."""

    def __init__(self, workdir: str | Path, *, every_steps: int, keep: int):
        self.directory = Path(workdir).absolute() / "checkpoints"
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=max(1, int(every_steps)),
            max_to_keep=max(1, int(keep)),
            create=True,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, *, force: bool = False) -> bool:
        return self.manager.save(step, args=ocp.args.StandardSave(state), force=force)

    def restore(self, abstract_state: Any, step: int | None = None) -> Any:
        """Restore ``step`` (default latest) into the structure and shardings given."""
        step = self.latest_step() if step is None else step
        target = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, abstract_state)
        return self.manager.restore(step, args=ocp.args.StandardRestore(target))

    def wait(self) -> None:
        """Block until the pending save is written."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def has_checkpoint(workdir: str | Path) -> bool:
    d = Path(workdir) / "checkpoints"
    return d.is_dir() and any(p.name.isdigit() for p in d.iterdir())
