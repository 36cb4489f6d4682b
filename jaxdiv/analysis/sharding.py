"""Spread a population's member axis over devices, for populations whose predictions do not
fit one device.

The analysis kernels are jitted functions of ``[N, M, C]`` logits (or ``[N, M]`` indicators);
given an input whose member axis is split over a ``member`` mesh axis, XLA partitions them:
per-member work (argmax, correctness, calibration) stays on the device that holds the member,
and only the small per-member reductions that pair statistics need are exchanged (an
all-gather of ``[N, M]`` bits or booleans instead of ``[N, M, C]`` floats). Results are the same
as on one device up to float reassociation; integer counts are exact.

    mesh = member_mesh()                                # every device on the member axis
    logits = shard_members(pad_members(logits, mesh)[0], mesh)
    stats = pairwise_kernel(logits, labels)             # any jitted kernel, unchanged
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxdiv.errors import JaxdivError

MEMBER_AXIS = "member"


def member_mesh(devices: Sequence[Any] | None = None) -> Mesh:
    """A 1-D mesh with every device (default: all of ``jax.devices()``) on ``member``."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.array(devices), (MEMBER_AXIS,))


def members_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    """Leading (member) dimension split over ``member``, the other ``ndim - 1`` kept whole."""
    if MEMBER_AXIS not in mesh.shape:
        raise JaxdivError(
            f"the mesh has no {MEMBER_AXIS!r} axis (axes: {', '.join(mesh.axis_names)}); "
            "build it with member_mesh() or set config.mesh.member"
        )
    return NamedSharding(mesh, PartitionSpec(MEMBER_AXIS, *([None] * (ndim - 1))))


def pad_members(array, mesh_or_multiple: Mesh | int) -> tuple[np.ndarray, int]:
    """``array`` with its leading axis padded (by repeating the last member) to a multiple of
    the member axis size, and the original member count (slice results back with it)."""
    multiple = (
        mesh_or_multiple.shape[MEMBER_AXIS]
        if isinstance(mesh_or_multiple, Mesh)
        else int(mesh_or_multiple)
    )
    array = np.asarray(array)
    n = array.shape[0]
    if n == 0:
        raise JaxdivError("cannot shard a population with no members")
    extra = (-n) % multiple
    if extra:
        array = np.concatenate([array, np.repeat(array[-1:], extra, axis=0)])
    return array, n


def shard_members(array, mesh: Mesh) -> jax.Array:
    """Place ``array`` [N, ...] on ``mesh`` with the member axis N split over ``member``.

    N must be a multiple of the member axis size (``pad_members`` makes it one).
    """
    ndim = np.ndim(array)
    if ndim < 1:
        raise JaxdivError("shard_members needs an array with a leading member axis")
    sharding = members_sharding(mesh, ndim)
    size = mesh.shape[MEMBER_AXIS]
    n = np.shape(array)[0]
    if n % size:
        raise JaxdivError(
            f"{n} members do not divide over the {size} devices of the member axis; pad "
            f"with pad_members(array, mesh) (to {n + (-n) % size}) and slice the results"
        )
    return jax.device_put(array, sharding)
