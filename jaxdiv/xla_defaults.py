"""XLA:CPU settings jaxdiv applies when it is imported, before JAX opens a backend.

XLA:CPU runs convolutions through YNNPACK by default; for the CIFAR networks' training step
(whose weight-gradient convolutions dominate) its Eigen convolutions are faster. Measured with
``benchmarks/train_throughput.py`` on an idle 2-core CPU machine, jaxlib 0.10.2, ResNet-20 at
batch 128: 218 -> 320 images/s (1.47x) with only the convolutions moved off YNNPACK, 1.32x with
every YNNPACK fusion off. The flag is added only when

- ``XLA_FLAGS`` does not set ``--xla_cpu_experimental_ynn_fusion_type`` itself,
- ``JAXDIV_XLA_DEFAULTS`` is not ``0`` (the opt-out),
- the installed jaxlib is a version on which the flag was checked (XLA aborts the process on a
  flag it does not know), and
- no JAX backend has started yet (``XLA_FLAGS`` is read once, when the first one starts).

GPU and TPU backends ignore ``xla_cpu_*`` flags.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
CPU_FLAGS = f"{YNN_FLAG}=-individual_convolution"
CHECKED_JAXLIB = ((0, 10),)  # (major, minor) versions that accept CPU_FLAGS


def _jaxlib_version() -> tuple[int, int] | None:
    try:
        major, minor = importlib.metadata.version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


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
        or _jaxlib_version() not in CHECKED_JAXLIB
        or _backend_started()
    ):
        return False
    os.environ["XLA_FLAGS"] = f"{current} {CPU_FLAGS}".strip()
    return True
