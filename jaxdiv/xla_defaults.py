"""XLA:CPU settings jaxdiv applies when it is imported, before JAX opens a backend.

XLA:CPU runs convolutions through YNNPACK by default; for the CIFAR networks' training step
(whose weight-gradient convolutions dominate) its Eigen convolutions are faster. Measured with
``benchmarks/train_throughput.py`` on an idle 2-core CPU machine, jaxlib 0.10.2, ResNet-20 at
batch 128: 218 -> 320 images/s (1.47x) with only the convolutions moved off YNNPACK, 1.32x with
every YNNPACK fusion off. ``CPU_FLAGS`` is added to ``XLA_FLAGS`` only when

- ``XLA_FLAGS`` does not set ``--xla_cpu_experimental_ynn_fusion_type`` itself,
- ``JAXDIV_XLA_DEFAULTS`` is not ``0`` (the opt-out),
- no JAX backend has started yet (``XLA_FLAGS`` is read once, when the first one starts), and
- the installed jaxlib's XLA accepts the flag. XLA aborts the process on a flag (or value) it
  does not know, so this is probed in a subprocess that starts XLA:CPU with ``CPU_FLAGS``;
  the answer is cached per jaxlib version in ``$JAXDIV_CACHE_DIR/xla_flags/`` (default
  ``~/.cache/jaxdiv``), so the probe (about a second) runs once per installed jaxlib.

GPU and TPU backends ignore ``xla_cpu_*`` flags.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
CPU_FLAGS = f"{YNN_FLAG}=-individual_convolution"
PROBE_TIMEOUT_S = 120
PROBE = "import jax.numpy as jnp; jnp.ones(2).sum().block_until_ready()"
# what XLA prints before aborting on XLA_FLAGS it cannot parse
REJECTED = ("Unknown flag in XLA_FLAGS", "Flag parsing failed", "Illegal value for")


def jaxlib_version() -> str | None:
    try:
        return importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        return None


def cache_file(version: str) -> Path:
    """Where the probe answers for jaxlib ``version`` are kept."""
    root = Path(os.environ.get("JAXDIV_CACHE_DIR") or Path.home() / ".cache" / "jaxdiv")
    return root / "xla_flags" / f"jaxlib-{version}.json"


def probe(xla_flags: str) -> bool | None:
    """Start XLA:CPU in a subprocess with ``XLA_FLAGS=xla_flags``: True if a computation runs,
    False if XLA rejects the flags, None if the probe says neither (timeout, other failure)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(XLA_FLAGS=xla_flags, JAX_PLATFORMS="cpu")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", PROBE],
            env=env,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode == 0:
        return True
    if any(marker in proc.stderr for marker in REJECTED):
        return False
    return None


def accepted(xla_flags: str = CPU_FLAGS) -> bool:
    """Whether the installed jaxlib's XLA accepts ``xla_flags``: cached, else probed (and the
    answer cached when the probe gives one)."""
    version = jaxlib_version()
    if version is None:
        return False
    path = cache_file(version)
    try:
        answers = json.loads(path.read_text())
    except (OSError, ValueError):
        answers = {}
    if not isinstance(answers, dict):
        answers = {}
    if isinstance(answers.get(xla_flags), bool):
        return answers[xla_flags]
    answer = probe(xla_flags)
    if answer is None:
        return False
    _write_json(path, {**answers, xla_flags: answer})
    return answer


def _write_json(path: Path, obj: dict) -> None:
    """Write the cache atomically; a cache that cannot be written is skipped (probed again)."""
    from jaxdiv.files import write_json_atomic  # NumPy, imported only the once a probe ran

    try:
        write_json_atomic(path, obj)
    except OSError:
        pass


def _backend_started() -> bool:
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return bool(xla_bridge.backends_are_initialized())


def apply() -> bool:
    """Add ``CPU_FLAGS`` to ``XLA_FLAGS`` when the conditions above hold; True if added."""
    current = os.environ.get("XLA_FLAGS", "")
    if (
        YNN_FLAG in current
        or os.environ.get("JAXDIV_XLA_DEFAULTS") == "0"
        or _backend_started()
        or not accepted(CPU_FLAGS)
    ):
        return False
    os.environ["XLA_FLAGS"] = f"{current} {CPU_FLAGS}".strip()
    return True
