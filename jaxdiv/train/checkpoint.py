"""Orbax checkpoints in ``WORKDIR/checkpoints`` with auto-resume.

Orbax writes each step into a temporary folder and renames it when complete, so a run killed
mid-save leaves the previous checkpoint intact and the next start resumes from it. A complete
checkpoint whose files were damaged later (truncated, overwritten) is skipped with one line:
``newest_intact`` restores the newest checkpoint that reads back, and a resumed run moves the
damaged ones to ``WORKDIR/superseded/corrupt-<time>/checkpoints/`` (never deleted).

A checkpoint whose tree or shapes differ from the state asked for (another model, another
method) is not damage: ``CheckpointMismatch`` names the first differences.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath


class CheckpointMismatch(Exception):
    """A readable checkpoint whose tree or shapes differ from the requested state's."""

    def __init__(self, step: int, differences: list[str]):
        self.step, self.differences = step, differences
        super().__init__(f"checkpoint {step}: " + "; ".join(differences))


def _key_name(key: Any) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """``{"params.Dense_0.kernel": shape}`` for every array leaf (dict keys, sequence indices
    and named-tuple fields all spelled as plain names, as orbax's metadata spells them)."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        shape = getattr(leaf, "shape", None)
        if shape is not None:
            out[".".join(_key_name(k) for k in path)] = tuple(int(d) for d in shape)
    return out


def _first_line(err: BaseException) -> str:
    text = (str(err).strip().splitlines() or [""])[0].split(" See full TensorStore")[0]
    return f"{type(err).__name__}: " + text[:160] + ("..." if len(text) > 160 else "")


class Checkpointer:
    """Save every ``every_steps`` steps (and on demand), keep the last ``keep``."""

    def __init__(self, workdir: str | Path, *, every_steps: int, keep: int):
        self.workdir = Path(workdir).absolute()
        self.directory = self.workdir / "checkpoints"
        self._options = ocp.CheckpointManagerOptions(
            save_interval_steps=max(1, int(every_steps)),
            max_to_keep=max(1, int(keep)),
            create=True,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=self._options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(int(s) for s in self.manager.all_steps())

    def save(self, step: int, state: Any, *, force: bool = False) -> bool:
        return self.manager.save(step, args=ocp.args.StandardSave(state), force=force)

    def restore(self, abstract_state: Any, step: int | None = None) -> Any:
        """Restore ``step`` (default latest) into the structure and shardings given."""
        step = self.latest_step() if step is None else step
        target = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, abstract_state)
        return self.manager.restore(step, args=ocp.args.StandardRestore(target))

    def misfit(self, step: int, abstract_state: Any) -> list[str]:
        """How checkpoint ``step``'s recorded tree and shapes differ from ``abstract_state``'s
        (empty when they agree). Raises when its metadata cannot be read."""
        handler = ocp.StandardCheckpointHandler()
        metadata = handler.metadata(epath.Path(self.directory / str(step) / "default"))
        saved, wanted = _shapes(getattr(metadata, "tree", metadata)), _shapes(abstract_state)
        order = sorted(set(saved) | set(wanted), key=lambda k: (not k.startswith("params."), k))
        out = []
        for k in order:
            if k not in wanted:
                out.append(f"{k} is only in the checkpoint")
            elif k not in saved:
                out.append(f"{k} is not in the checkpoint")
            elif saved[k] != wanted[k]:
                out.append(f"{k} is {saved[k]} in the checkpoint but {wanted[k]} in the config")
        return out

    def newest_intact(self, abstract_state: Any) -> tuple[int | None, Any, list[tuple[int, str]]]:
        """``(step, state, skipped)``: the newest checkpoint that reads back completely, and
        the newer ones that do not as ``(step, reason)``; ``(None, None, skipped)`` when none
        reads back. Raises ``CheckpointMismatch`` for a readable checkpoint of another tree or
        shapes."""
        skipped: list[tuple[int, str]] = []
        for step in reversed(self.all_steps()):
            try:
                differences = self.misfit(step, abstract_state)
            except Exception as err:  # unreadable metadata: damaged
                skipped.append((step, _first_line(err)))
                continue
            if differences:
                raise CheckpointMismatch(step, differences)
            try:
                return step, self.restore(abstract_state, step), skipped
            except Exception as err:  # truncated or damaged array files
                skipped.append((step, _first_line(err)))
        return None, None, skipped

    def set_aside(self, steps: list[int]) -> Path | None:
        """Move the checkpoints of ``steps`` to ``WORKDIR/superseded/corrupt-<time>/
        checkpoints/`` and reopen the manager without them; returns that folder."""
        if not steps:
            return None
        self.manager.wait_until_finished()
        self.manager.close()
        dest = self.workdir / "superseded" / f"corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
        (dest / "checkpoints").mkdir(parents=True, exist_ok=True)
        for step in steps:
            shutil.move(str(self.directory / str(step)), str(dest / "checkpoints" / str(step)))
        self.manager = ocp.CheckpointManager(self.directory, options=self._options)
        return dest

    def wait(self) -> None:
        """Block until the pending save is written."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def has_checkpoint(workdir: str | Path) -> bool:
    d = Path(workdir) / "checkpoints"
    return d.is_dir() and any(p.name.isdigit() for p in d.iterdir())
