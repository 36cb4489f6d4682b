"""The device mesh and how arrays are laid out on it.

The mesh has four named axes, outermost first: ``member`` (independent members of a
population), ``data`` (the batch), ``fsdp`` (the batch AND the parameters: fully sharded data
parallel) and ``model`` (parameter dimensions only: tensor parallel). Their sizes come from
``config.mesh`` (``data=-1`` takes the devices the other axes leave); axes of size 1 cost
nothing, so the default ``{"data": -1}`` is plain data parallelism with replicated parameters.

Parameters (and every other leaf of the train state) are laid out by regex sharding rules,
``config.mesh.rules``: a list of ``(regex, spec)`` pairs tried in order against each leaf's
path (``params/block0/MlpBlock_0/Dense_0/kernel``, ``opt_state/1/0/trace/block0/...``,
``state/batch_stats/...``; ``re.search`` semantics, so anchor with ``$`` to catch the
optimiser's copy too). The first match wins; leaves that no rule matches are replicated.
``spec`` is one of

- ``"replicate"`` (or an empty list): a full copy on every device;
- ``"fsdp"``: shard the largest dimension the ``fsdp`` axis size divides over ``fsdp``
  (leaves with no such dimension, or under ``config.mesh.min_shard_size`` elements, are
  replicated);
- a list with one entry per dimension: an axis name, a list of axis names, or ``None``
  (``[None, "model"]`` splits a kernel's output features over ``model``).

Every mistake (sizes that do not divide the devices, a batch that does not divide the batch
axes, a rule that matches no leaf, an explicit spec of the wrong rank, an unknown axis or an
indivisible dimension) raises ``JaxdivError`` before anything is compiled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxdiv.errors import JaxdivError

AXES: tuple[str, ...] = ("member", "data", "fsdp", "model")
BATCH_AXES: tuple[str, ...] = ("data", "fsdp")
_MESH_KEYS = frozenset(AXES) | {"rules", "min_shard_size"}
DEFAULT_MIN_SHARD_SIZE = 2**14  # elements; smaller leaves are not worth a collective


# ----------------------------------------------------------------------------------- mesh
def mesh_shape(cfg: Mapping | None, num_devices: int) -> dict[str, int]:
    """Axis sizes from ``cfg`` for ``num_devices`` devices; at most one axis may be -1."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - _MESH_KEYS)
    if unknown:
        raise JaxdivError(
            f"unknown mesh key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(_MESH_KEYS))}"
        )
    sizes: dict[str, int] = {}
    for axis in AXES:
        value = cfg.get(axis, -1 if axis == "data" else 1)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | np.integer)
            or (value < 1 and value != -1)
        ):
            raise JaxdivError(f"mesh.{axis} must be a positive integer or -1, got {value!r}")
        sizes[axis] = int(value)
    fill = [a for a, s in sizes.items() if s == -1]
    if len(fill) > 1:
        raise JaxdivError(
            f"only one mesh axis may be -1 (fill the remaining devices); got {', '.join(fill)}"
        )
    fixed = math.prod(s for s in sizes.values() if s != -1)
    described = " x ".join(f"{a}={s}" for a, s in sizes.items() if s != 1 or a == "data")
    if num_devices % fixed:
        raise JaxdivError(
            f"mesh {described} needs a multiple of {fixed} devices, which does not divide the "
            f"{num_devices} available device(s); choose mesh sizes whose product divides "
            f"{num_devices} (e.g. --config.mesh.data=-1)"
        )
    if fill:
        sizes[fill[0]] = num_devices // fixed
    return sizes


def make_mesh(
    cfg: ml_collections.ConfigDict | Mapping | None = None,
    devices: Sequence[Any] | None = None,
) -> Mesh:
    """The mesh ``(member, data, fsdp, model)`` over the first ``prod(sizes)`` devices.

    ``devices`` defaults to ``jax.devices()``. With several processes the devices are taken
    process-major, so the outer batch axes split the hosts and the inner ``fsdp``/``model``
    axes stay within a host where the sizes allow; on one host, GPU/TPU devices are ordered
    by ``mesh_utils.create_device_mesh`` for the interconnect topology.
    """
    devices = list(jax.devices() if devices is None else devices)
    sizes = mesh_shape(_as_dict(cfg), len(devices))
    shape = tuple(sizes[a] for a in AXES)
    used = devices[: math.prod(shape)]
    if len({d.process_index for d in used}) > 1:
        # Process-major order: each process's devices form one contiguous block of the batch
        # axes, which is what its slice of every global batch (``shard_batch``) fills.
        used = sorted(used, key=lambda d: (d.process_index, d.id))
        return Mesh(np.array(used).reshape(shape), AXES)
    try:
        if used and used[0].platform != "cpu":  # topology-aware order on one TPU/GPU host
            from jax.experimental import mesh_utils

            grid = mesh_utils.create_device_mesh(shape, used)
        else:
            grid = np.array(used).reshape(shape)
    except (ValueError, NotImplementedError, AssertionError):
        grid = np.array(used).reshape(shape)
    return Mesh(grid, AXES)


def _as_dict(cfg) -> dict:
    if cfg is None:
        return {}
    if isinstance(cfg, ml_collections.ConfigDict):
        return cfg.to_dict()
    return dict(cfg)


def describe(mesh: Mesh) -> str:
    """``member=1 x data=4 x fsdp=2 x model=1 (8 devices, 2 processes)``."""
    axes = " x ".join(f"{a}={mesh.shape[a]}" for a in mesh.axis_names)
    procs = len({d.process_index for d in mesh.devices.flat})
    return f"{axes} ({mesh.size} devices, {procs} process{'es' if procs > 1 else ''})"


# ---------------------------------------------------------------------------- batches
def batch_axes(mesh: Mesh) -> tuple[str, ...]:
    """Mesh axes the batch is split over: ``data``, plus ``fsdp`` when it has size > 1."""
    return tuple(a for a in BATCH_AXES if a in mesh.shape and (a == "data" or mesh.shape[a] > 1))


def batch_size_divisor(mesh: Mesh) -> int:
    return math.prod(mesh.shape[a] for a in batch_axes(mesh))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over the batch axes."""
    axes = batch_axes(mesh)
    return NamedSharding(mesh, PartitionSpec(axes[0] if len(axes) == 1 else axes))


def check_batch(global_batch: int, mesh: Mesh) -> None:
    n = batch_size_divisor(mesh)
    if global_batch % n:
        names = " x ".join(f"{a}={mesh.shape[a]}" for a in batch_axes(mesh))
        raise JaxdivError(
            f"batch size {global_batch} is not divisible by the mesh's batch axes ({names}: "
            f"{n} devices); choose a multiple of {n}"
        )


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Place this process's part of a global batch on the mesh, sharded along the batch axes.

    With one process ``batch`` is the whole global batch; with several, each process passes
    its own contiguous slice (``TrainLoader`` with ``process_index``/``process_count``).
    """
    sharding = batch_sharded(mesh)
    if jax.process_count() == 1:
        return jax.device_put(batch, sharding)
    return jax.tree_util.tree_map(
        lambda x: jax.make_array_from_process_local_data(sharding, x), batch
    )


def put_global(tree: Any, sharding: NamedSharding) -> Any:
    """Arrays every process holds in full (e.g. an eval batch) as global arrays on ``sharding``."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree_util.tree_map(put, tree)


def to_host(tree: Any) -> Any:
    """NumPy copies of (possibly multi-process) global arrays, on every process."""

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree_util.tree_map(get, tree)


def host_io(fn, mesh: Mesh):
    """Wrap a jitted ``fn(replicated_tree, batch_array) -> outputs`` whose second input is
    batch-sharded so that it takes a host NumPy batch (the same on every process) and returns
    host NumPy outputs. A no-op wrapper with one process."""
    if jax.process_count() == 1:
        return fn
    sharding = batch_sharded(mesh)

    def wrapped(tree, batch):
        return to_host(fn(tree, put_global(batch, sharding)))

    return wrapped


# ---------------------------------------------------------------------- sharding rules
def leaf_path(path: tuple) -> str:
    """``params/block0/kernel`` from a ``tree_flatten_with_path`` key path."""
    parts = []
    for key in path:
        for attr in ("key", "idx", "name"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def _rules(cfg) -> list[tuple[str, re.Pattern, Any]]:
    raw = _as_dict(cfg).get("rules") or []
    if isinstance(raw, Mapping):
        raise JaxdivError("mesh.rules must be a list of (regex, spec) pairs, not a mapping")
    rules = []
    for i, rule in enumerate(raw):
        if (
            not isinstance(rule, Sequence)
            or isinstance(rule, str)
            or len(rule) != 2
            or not isinstance(rule[0], str)
        ):
            raise JaxdivError(
                f"mesh.rules[{i}] must be a (regex, spec) pair, got {rule!r}; e.g. "
                "('.*kernel$', 'fsdp')"
            )
        try:
            pattern = re.compile(rule[0])
        except re.error as err:
            raise JaxdivError(f"mesh.rules[{i}]: bad regex {rule[0]!r}: {err}") from None
        rules.append((rule[0], pattern, rule[1]))
    return rules


def _fsdp_spec(shape: tuple[int, ...], mesh: Mesh, min_size: int) -> PartitionSpec:
    n = mesh.shape.get("fsdp", 1)
    if n == 1 or math.prod(shape) < min_size:
        return PartitionSpec()
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % n == 0:
            spec = [None] * len(shape)
            spec[dim] = "fsdp"
            return PartitionSpec(*spec)
    return PartitionSpec()


def _explicit_spec(spec, shape, mesh: Mesh, path: str, regex: str) -> PartitionSpec:
    entries = list(spec)
    where = f"sharding rule {regex!r} on {path} {tuple(shape)}"
    if len(entries) != len(shape):
        raise JaxdivError(
            f"{where}: spec {entries} has {len(entries)} entries but the leaf has "
            f"{len(shape)} dimensions; give one entry (axis name or None) per dimension"
        )
    out = []
    for dim, entry in zip(shape, entries, strict=True):
        axes = () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)
        for a in axes:
            if a not in mesh.shape:
                raise JaxdivError(
                    f"{where}: unknown mesh axis {a!r}; valid axes: {', '.join(mesh.axis_names)}"
                )
        size = math.prod(mesh.shape[a] for a in axes)
        if dim % size:
            raise JaxdivError(
                f"{where}: dimension {dim} is not divisible by {'x'.join(axes)} = {size}; "
                "shard another dimension or change the mesh"
            )
        out.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return PartitionSpec(*out)


def _spec_for(spec, shape, mesh, min_size, path, regex) -> PartitionSpec:
    if spec in ("replicate", None) or (not isinstance(spec, str) and len(spec) == 0):
        return PartitionSpec()
    if spec == "fsdp":
        return _fsdp_spec(shape, mesh, min_size)
    if isinstance(spec, str):
        raise JaxdivError(
            f"sharding rule {regex!r}: unknown spec {spec!r}; use 'replicate', 'fsdp' or a "
            "list with one mesh axis (or None) per dimension"
        )
    return _explicit_spec(spec, shape, mesh, path, regex)


def state_shardings(
    abstract_state: Any,
    mesh: Mesh,
    cfg: ml_collections.ConfigDict | Mapping | None = None,
    *,
    stacked_members: bool = False,
) -> Any:
    """A ``NamedSharding`` for every leaf of ``abstract_state`` from ``cfg.rules``.

    With ``stacked_members`` every leaf carries a leading member dimension, split over the
    ``member`` axis; the rules then describe the remaining dimensions.
    """
    rules = _rules(cfg)
    min_size = int(_as_dict(cfg).get("min_shard_size", DEFAULT_MIN_SHARD_SIZE))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract_state)
    used = [False] * len(rules)
    out = []
    lead = ("member",) if stacked_members else ()
    for path, leaf in leaves:
        shape = tuple(np.shape(leaf))
        if stacked_members:
            if not shape or shape[0] % mesh.shape["member"]:
                raise JaxdivError(
                    f"{leaf_path(path)}: {shape[0] if shape else 'no'} stacked members do not "
                    f"divide the mesh's member axis ({mesh.shape['member']}); use a multiple"
                )
            shape = shape[1:]
        name = leaf_path(path)
        spec = PartitionSpec()
        for i, (regex, pattern, rule_spec) in enumerate(rules):
            if pattern.search(name):
                used[i] = True
                spec = _spec_for(rule_spec, shape, mesh, min_size, name, regex)
                break
        out.append(NamedSharding(mesh, PartitionSpec(*lead, *spec)))
    unused = [regex for (regex, _, _), u in zip(rules, used, strict=True) if not u]
    if unused:
        examples = ", ".join(leaf_path(p) for p, _ in leaves[:3])
        raise JaxdivError(
            f"sharding rule(s) {', '.join(map(repr, unused))} match no leaf of the train state "
            f"(paths look like {examples}); fix the regex or remove the rule"
        )
    return jax.tree_util.tree_unflatten(treedef, out)


def sharding_summary(shardings: Any, abstract_state: Any) -> dict[str, int]:
    """Bytes per device of a state laid out by ``shardings``, and of a replicated copy."""
    per_device = total = 0
    for sh, leaf in zip(
        jax.tree_util.tree_leaves(shardings), jax.tree_util.tree_leaves(abstract_state), strict=True
    ):
        nbytes = math.prod(np.shape(leaf)) * np.dtype(leaf.dtype).itemsize
        total += nbytes
        shard = sh.shard_shape(tuple(np.shape(leaf)))
        per_device += math.prod(shard) * np.dtype(leaf.dtype).itemsize
    return {"bytes_per_device": per_device, "bytes_replicated": total}


def over_members(fn, mesh: Mesh):
    """``jax.vmap(fn)`` over a leading member axis of every argument and output, with each
    slice of the mesh's ``member`` axis running only its own members.

    The ``member`` axis is manual (``shard_map``) and the others stay automatic inside, so
    each member's step is still split over ``data``/``fsdp``/``model``. Without this, XLA
    tends to replicate a vmapped convolution's batched weights and every device computes
    every member. Jit the result with member-leading shardings (``state_shardings(...,
    stacked_members=True)``).
    """
    lead = PartitionSpec("member")
    return jax.shard_map(
        jax.vmap(fn),
        mesh=mesh,
        in_specs=lead,
        out_specs=lead,
        axis_names={"member"},
        check_vma=False,
    )
