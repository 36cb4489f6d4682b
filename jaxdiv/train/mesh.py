"""The device mesh: a ``data`` axis over which batches are sharded."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxdiv.errors import JaxdivError


def make_mesh(cfg: ml_collections.ConfigDict | None = None) -> Mesh:
    """A 1-D ``data`` mesh over ``cfg.data`` devices (-1 or None: all devices)."""
    devices = jax.devices()
    n = int(cfg.get("data", -1)) if cfg is not None else -1
    if n == -1:
        n = len(devices)
    if n < 1 or len(devices) % n:
        raise JaxdivError(
            f"mesh data axis {n} does not divide the {len(devices)} available device(s); "
            f"set --config.mesh.data to a divisor of {len(devices)} or -1"
        )
    return Mesh(np.array(devices[:n]), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec("data"))


def check_batch(global_batch: int, mesh: Mesh) -> None:
    if global_batch % mesh.shape["data"]:
        raise JaxdivError(
            f"batch size {global_batch} is not divisible by the mesh's data axis "
            f"({mesh.shape['data']} devices); choose a multiple of {mesh.shape['data']}"
        )


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Place this process's part of a global batch on the mesh, sharded along ``data``."""
    sharding = batch_sharded(mesh)
    if jax.process_count() == 1:
        return jax.device_put(batch, sharding)
    return jax.tree_util.tree_map(
        lambda x: jax.make_array_from_process_local_data(sharding, x), batch
    )
