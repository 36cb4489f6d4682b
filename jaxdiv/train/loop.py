"""The trainer: ONE jitted update step and ONE loop, for one member or K stacked members.

Read it top to bottom, in banner sections: setup (a config's data, model, method and
optimiser), mesh (each train-state leaf's sharding, worked out once), input (each step's
batch, placed on the mesh), update step, checkpoint, loop.

Members. ``train_members(configs, workdirs)`` trains K configs that differ only in their seed
(and name) together: their train states are stacked along a leading member dimension that is
split over the mesh's ``member`` axis, and the step is the one-member step under ``jax.vmap``,
each slice of the member axis computing only its own members (``mesh.over_members``). With
K=1 (``train``) the state has no member dimension and the step is the one-member step itself.
Each member keeps its own run directory, written exactly as a single run writes it
(config.json, checkpoints/ of its own un-stacked state, metrics.jsonl, tensorboard/,
result.json), so a member can later be resumed, re-run or predicted alone. Only the main
process (``jax.process_index() == 0``) writes metrics and results; every process checks the
loss for divergence.

Determinism. Everything a step needs is derived from (seed, step): the batch (random access
into the loader's shuffled order) and the PRNG key (``fold_in(step_key, step)``), so a run
resumed from a checkpoint continues exactly as an uninterrupted one would, and a member
trained in a stack equals the member trained alone up to float reassociation.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from jaxdiv.data import streaming
from jaxdiv.data.datasets import ArraySplit
from jaxdiv.errors import JaxdivError
from jaxdiv.files import write_json_atomic
from jaxdiv.methods import build_method
from jaxdiv.methods.base import Method
from jaxdiv.methods.two_view import check_crop_size
from jaxdiv.models import build_model
from jaxdiv.train import finetune
from jaxdiv.train import mesh as mesh_lib
from jaxdiv.train import steps as steps_lib
from jaxdiv.train.checkpoint import Checkpointer, CheckpointMismatch, has_checkpoint
from jaxdiv.train.evaluate import accuracy_and_loss, make_predict_fn, predict_split
from jaxdiv.train.metrics import (
    MetricWriter,
    latest_values,
    load_pending,
    read_metrics,
    save_pending,
)
from jaxdiv.train.names import validate_names
from jaxdiv.train.optim import build_optimizer, learning_rate_schedule
from jaxdiv.train.workdir import (
    check_workdir,
    config_differences,
    config_to_dict,
    load_config,
    prepare_workdir,
)

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


# ---------------------------------------------------------------------------------- setup
@dataclasses.dataclass
class Setup:
    """Everything built from a config before training: data, model, method, optimiser."""

    config: ml_collections.ConfigDict
    mesh: Any
    method: Method
    num_classes: int
    train_split: Any  # ArraySplit, StreamingSplit, or a shape-only placeholder
    steps_per_epoch: int
    total_steps: int
    tx: optax.GradientTransformation
    lr_schedule: Any

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one training image."""
        h, w, c = self.train_split.images.shape[1:]
        return int(h), int(w), int(c)


def build_setup(config: ml_collections.ConfigDict, *, load_train: bool = True) -> Setup:
    """Validate the config and build the pieces (fails fast, before any compute).

    ``load_train=False`` reads no record: the training split is a shape-only placeholder,
    from ``config.data.num_train_examples``, ``num_classes`` and ``image_size`` when all three
    are set (nothing is read at all, e.g. for a benchmark on synthetic batches), else from
    the prepared dataset's metadata. Such a setup builds states and steps (``init_state``,
    ``make_train_step``) but cannot feed the loop.
    """
    dtype = config.get("compute_dtype", "float32")
    if dtype not in DTYPES:
        raise JaxdivError(f"unknown compute_dtype {dtype!r}; valid choices: {', '.join(DTYPES)}")
    validate_names(config)
    steps_lib.check_lengths(config)
    mesh = mesh_lib.make_mesh(config.get("mesh"))
    mesh_lib.check_batch(int(config.batch_size), mesh)
    split = streaming.train_split(config.data, load=load_train)
    per_epoch = steps_lib.steps_per_epoch(len(split), int(config.batch_size))
    total = steps_lib.total_steps(config, per_epoch)
    num_classes = split.num_classes
    model_kwargs = dict(config.model.get("kwargs", {}) or {})
    model = build_model(config.model.name, num_classes, dtype=DTYPES[dtype], **model_kwargs)
    method = build_method(config, model, num_classes, total_steps=total)
    check_crop_size(method, model, int(split.images.shape[1]), config)
    tx = build_optimizer(config.optimizer, total, per_epoch)
    schedule = learning_rate_schedule(config.optimizer, total, per_epoch)
    return Setup(config, mesh, method, num_classes, split, per_epoch, total, tx, schedule)


def cohort_key(config: ml_collections.ConfigDict) -> str:
    """Configs with equal keys differ only in ``seed`` and ``name``: they can be stacked."""
    d = config_to_dict(config)
    d.pop("seed", None)
    d.pop("name", None)
    return json.dumps(d, sort_keys=True)


# ----------------------------------------------------------------------------------- mesh
def _init_fn(setup: Setup) -> Callable:
    h, w, c = setup.image_shape

    def init(rng):
        variables = setup.method.init(rng, jnp.zeros((2, h, w, c), jnp.float32))
        params = variables.pop("params")
        return {
            "step": jnp.zeros((), jnp.int32),
            "params": params,
            "state": variables,
            "opt_state": setup.tx.init(params),
        }

    return init


def abstract_state(setup: Setup, members: int = 1) -> Any:
    """The train state's shapes and dtypes (a leading member dimension when ``members > 1``)."""
    state = jax.eval_shape(_init_fn(setup), jax.random.PRNGKey(0))
    if members == 1:
        return state
    return jax.tree_util.tree_map(
        lambda s: jax.ShapeDtypeStruct((members, *s.shape), s.dtype), state
    )


def state_shardings(setup: Setup, members: int = 1) -> Any:
    """Each train-state leaf's sharding from ``config.mesh.rules`` (default: replicated); for
    ``members > 1`` the leading member dimension is split over the ``member`` axis."""
    return mesh_lib.state_shardings(
        abstract_state(setup, members),
        setup.mesh,
        setup.config.get("mesh"),
        stacked_members=members > 1,
    )


def batch_sharding(mesh: Any, members: int = 1) -> NamedSharding:
    """A batch leaf's sharding: batch axes on dim 0 (dim 1 behind ``member`` if stacked)."""
    if members == 1:
        return mesh_lib.batch_sharded(mesh)
    axes = mesh_lib.batch_axes(mesh)
    return NamedSharding(mesh, PartitionSpec("member", axes[0] if len(axes) == 1 else axes))


def key_sharding(mesh: Any, members: int = 1) -> NamedSharding:
    """The step key's sharding: replicated, or one key per member along ``member``."""
    return (
        mesh_lib.replicated(mesh) if members == 1 else NamedSharding(mesh, PartitionSpec("member"))
    )


def init_state(setup: Setup, rng: jax.Array, members: int = 1, shardings: Any = None) -> dict:
    """The train state {step, params, state, opt_state}, laid out on the mesh.

    With ``members > 1``, ``rng`` holds one key per member (shape [K, 2]); each member is
    initialised exactly as alone and the states are stacked along a leading member dimension.
    """
    single = jax.jit(_init_fn(setup), out_shardings=state_shardings(setup))
    if members == 1:
        return single(rng)
    return stack_members([single(k) for k in rng], shardings or state_shardings(setup, members))


def stack_members(states: Sequence[dict], shardings: Any) -> dict:
    """K one-member states stacked along a new leading dimension, laid out by ``shardings``."""
    stack = jax.jit(
        lambda *xs: jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *xs),
        out_shardings=shardings,
    )
    return stack(*states)


def _unstacker(setup: Setup, members: int) -> Callable[[dict], list[dict]]:
    """state -> the list of its members' one-member states (each in the one-member layout)."""
    if members == 1:
        return lambda state: [state]
    single = state_shardings(setup)
    return jax.jit(
        lambda s: [jax.tree_util.tree_map(lambda x, i=i: x[i], s) for i in range(members)],
        out_shardings=[single] * members,
    )


def _with_shardings(tree: Any, shardings: Any) -> Any:
    return jax.tree_util.tree_map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), tree, shardings
    )


# ---------------------------------------------------------------------------------- input
def _local_block(sharding: NamedSharding, shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """Per leading dimension, the [lo, hi) range this process's devices hold."""
    ranges = [(dim, 0) for dim in shape]
    for index in sharding.addressable_devices_indices_map(shape).values():
        for d, (sl, dim) in enumerate(zip(index[: len(shape)], shape, strict=True)):
            lo, hi, _ = sl.indices(dim)
            ranges[d] = (min(ranges[d][0], lo), max(ranges[d][1], hi))
    return ranges


class MemberBatches:
    """``batches(step)``: every member's batch of global step ``step`` on the mesh: one
    member's [B, ...] leaves, or K members' stacked [K, B, ...].

    In-memory and streamed splits go through the same ``streaming.train_loader``, one loader
    per member (its own seed, so its own order). Each process reads only the part its devices
    hold: the members of its slice of the ``member`` axis and its slice of each batch.
    """

    def __init__(self, setup: Setup, seeds: Sequence[int]):
        self.members = len(seeds)
        self.batch_size = int(setup.config.batch_size)
        self.sharding = batch_sharding(setup.mesh, self.members)
        stacked = self.members > 1
        self.lead = (self.members, self.batch_size) if stacked else (self.batch_size,)
        block = _local_block(self.sharding, self.lead)
        m_lo, m_hi = block[0] if stacked else (0, 1)
        rows = block[-1]
        self.offset = (m_lo, rows[0]) if stacked else (rows[0],)
        self.loaders = [
            streaming.train_loader(setup.train_split, self.batch_size, int(s), setup.config.data)
            for s in seeds[m_lo:m_hi]
        ]
        size = self.loaders[0].local_batch_size
        mine = (self.loaders[0].process_index * size, self.loaders[0].process_index * size + size)
        if tuple(rows) != mine:
            raise JaxdivError(
                f"process {jax.process_index()}'s devices hold rows {rows[0]}:{rows[1]} of each "
                f"batch but its loader reads rows {mine[0]}:{mine[1]}; with several processes "
                "keep the member axis within each process (mesh.member=1)"
            )

    def __call__(self, step: int) -> dict[str, jax.Array]:
        parts = [loader.batch(step) for loader in self.loaders]
        if self.members == 1:
            local = parts[0]
        else:
            local = {key: np.stack([p[key] for p in parts]) for key in parts[0]}
        if jax.process_count() == 1:
            return jax.device_put(local, self.sharding)
        return {key: self._place(x) for key, x in local.items()}

    def _place(self, x: np.ndarray) -> jax.Array:
        shape = (*self.lead, *x.shape[len(self.lead) :])
        arrays = []
        for device, index in self.sharding.addressable_devices_indices_map(shape).items():
            local_index = tuple(
                slice(sl.indices(dim)[0] - off, sl.indices(dim)[1] - off)
                for sl, dim, off in zip(index, shape, self.offset, strict=False)
            )
            arrays.append(jax.device_put(x[local_index], device))
        return jax.make_array_from_single_device_arrays(shape, self.sharding, arrays)


# ---------------------------------------------------------------------------- update step
def train_step_fn(setup: Setup) -> Callable:
    """The un-jitted one-member step (state, batch, key) -> (state, metrics)."""
    method, tx = setup.method, setup.tx

    def step_fn(state, batch, key):
        rng = jax.random.fold_in(key, state["step"])
        aug_rng, loss_rng = jax.random.split(rng)
        inputs = method.augment(aug_rng, batch["image"])
        grad_fn = jax.value_and_grad(method.loss, has_aux=True)
        (loss, (model_state, metrics)), grads = grad_fn(
            state["params"], state["state"], inputs, batch["label"], loss_rng, state["step"]
        )
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        model_state = method.after_update(params, model_state, state["step"])
        new_state = {
            "step": state["step"] + 1,
            "params": params,
            "state": model_state,
            "opt_state": opt_state,
        }
        return new_state, metrics

    return step_fn


def make_train_step(setup: Setup, members: int = 1, shardings: Any = None) -> Callable:
    """THE jitted step (state, batch, key) -> (state, metrics) of the loop and the dry run.

    ``members=1``: the one-member step, batch split over the batch axes. ``members=K``:
    ``mesh.over_members`` of it, every argument with a leading member dimension (the keys
    [K, 2]); the metrics come back replicated ([K] per metric) for the main process to log.
    ``shardings`` defaults to ``state_shardings(setup, members)``.
    """
    shardings = state_shardings(setup, members) if shardings is None else shardings
    rep = mesh_lib.replicated(setup.mesh)
    fn = train_step_fn(setup)
    if members > 1:
        fn = mesh_lib.over_members(fn, setup.mesh)
    return jax.jit(fn, out_shardings=(shardings, rep), donate_argnums=(0,))


def abstract_step_inputs(setup: Setup, members: int = 1) -> tuple[Any, Any, Any]:
    """(state, batch, key) of the step as ``jax.ShapeDtypeStruct`` with their shardings,
    exactly as the loop passes them (``make_train_step(...).lower(*these)`` compiles it)."""
    mesh, bs = setup.mesh, int(setup.config.batch_size)
    lead = (members, bs) if members > 1 else (bs,)
    sh = batch_sharding(mesh, members)
    batch = {
        "image": jax.ShapeDtypeStruct((*lead, *setup.image_shape), jnp.uint8, sharding=sh),
        "label": jax.ShapeDtypeStruct(lead, jnp.int32, sharding=sh),
        "index": jax.ShapeDtypeStruct(lead, jnp.int32, sharding=sh),
    }
    key_shape = (members, 2) if members > 1 else (2,)
    key = jax.ShapeDtypeStruct(key_shape, jnp.uint32, sharding=key_sharding(mesh, members))
    state = _with_shardings(abstract_state(setup, members), state_shardings(setup, members))
    return state, batch, key


# ----------------------------------------------------------------------------- checkpoint
def _newest_intact(
    setup: Setup, ckpt: Checkpointer, workdir: Path, *, resuming: bool
) -> tuple[int | None, dict | None]:
    """One member's newest checkpoint that reads back, in the one-member layout, as
    ``(step, state)`` (``(None, None)`` when none does). Each damaged newer checkpoint is
    named in one line; a resumed run moves them to ``WORKDIR/superseded/corrupt-<time>/``.
    A checkpoint of another model or method is refused with the differences."""
    abstract = _with_shardings(abstract_state(setup), state_shardings(setup))
    try:
        step, state, skipped = ckpt.newest_intact(abstract)
    except CheckpointMismatch as err:
        raise _mismatch_error(setup.config, workdir, err) from None
    moved = ckpt.set_aside([s for s, _ in skipped]) if resuming else None
    if jax.process_index() == 0:
        then = "starting afresh" if step is None else f"using step {step}"
        where = f"; it moved to {moved}" if moved else ""
        for bad, reason in skipped:
            print(
                f"jaxdiv: skipped the damaged checkpoint {ckpt.directory / str(bad)} "
                f"({reason}); {then}{where}",
                file=sys.stderr,
            )
    return step, state


def _mismatch_error(
    config: ml_collections.ConfigDict, workdir: Path, err: CheckpointMismatch
) -> JaxdivError:
    shown = "; ".join(err.differences[:2]) + (" ..." if len(err.differences) > 2 else "")
    trained = Path(workdir) / "config.json"
    differs = ""
    if trained.exists():
        diff = config_differences(json.loads(trained.read_text()), config)
        diff.sort(key=lambda d: not d.startswith(("model.", "method.")))  # what shapes depend on
        if diff:
            differs = f"; the config differs from {trained} in " + "; ".join(diff[:4])
            differs += " ..." if len(diff) > 4 else ""
    return JaxdivError(
        f"the config does not fit the checkpoint {err.step} in {Path(workdir) / 'checkpoints'} "
        f"({shown}){differs}; pass the config the run was trained with (predict without "
        "--config uses WORKDIR/config.json)"
    )


def _save(ckpts: Sequence[Checkpointer], step: int, states: Sequence[dict]) -> None:
    """Each member's checkpoint of ``step``. With several processes one member's save is
    finished before the next begins (orbax's cross-process barriers are named per process,
    not per manager)."""
    for c, member_state in zip(ckpts, states, strict=True):
        if len(ckpts) > 1 and jax.process_count() > 1:
            for other in ckpts:
                other.wait()
        c.save(step, member_state, force=True)


def pretrained_backbone(source: str | Path) -> tuple[dict, str]:
    """``finetune_from``'s backbone (flat trees per collection) and its model name."""
    finetune.check_source(source)
    config = load_config(Path(source))
    _, variables, _ = restore_variables(config, source, build_setup(config, load_train=False))
    return finetune.backbone_of(variables, config.method.name), str(config.model.name)


def restore_variables(
    config: ml_collections.ConfigDict, workdir: str | Path, setup: Setup | None = None
) -> tuple[Setup, dict, int]:
    """The latest checkpoint's model variables (params plus state) for inference."""
    setup = setup or build_setup(config)
    if not has_checkpoint(workdir):
        raise JaxdivError(f"no checkpoint in {Path(workdir) / 'checkpoints'}; run `train` first")
    ckpt = Checkpointer(workdir, every_steps=1, keep=config.keep_checkpoints)
    try:
        step, state = _newest_intact(setup, ckpt, Path(workdir), resuming=False)
    finally:
        ckpt.close()
    if step is None:
        raise JaxdivError(
            f"no checkpoint in {Path(workdir) / 'checkpoints'} reads back (all damaged); "
            "train the run again (`jaxdiv train` resumes from scratch)"
        )
    return setup, _variables(state), int(step)


def _variables(state: dict) -> dict:
    return {"params": state["params"], **state["state"]}


# ----------------------------------------------------------------------------------- loop
def _resumed_pending(
    workdirs: Sequence[Path], start: int, log_every: int, total: int, is_main: bool
) -> list[dict]:
    """The per-step metrics a run resumed at ``start`` had gathered since its last log line
    (one dict per step, stacked over members when there are several), from
    ``metrics_pending.json``; empty on a log boundary, or (with one line) when not recorded."""
    missing = start % log_every
    if not start or not missing or start >= total:
        return []
    rows = [load_pending(w, start) for w in workdirs]
    if any(r is None or len(r) != missing for r in rows):
        if is_main:
            print(
                f"jaxdiv: the metrics of steps {start - missing + 1}-{start} were not saved with "
                f"checkpoint {start}; the line of step {min(total, start - missing + log_every)} "
                "averages only the steps after it",
                file=sys.stderr,
            )
        return []
    if len(rows) == 1:
        return rows[0]
    return [{n: np.stack([r[j][n] for r in rows]) for n in rows[0][j]} for j in range(missing)]


def train(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    *,
    force: bool = False,
    progress: bool = True,
    eval_split: ArraySplit | None = None,
) -> dict:
    """Train (or resume) the run in ``workdir``; returns the final metrics (result.json)."""
    return train_members(
        [config], [workdir], force=force, progress=progress, eval_split=eval_split
    )[0]


def train_members(
    configs: Sequence[ml_collections.ConfigDict],
    workdirs: Sequence[str | Path],
    *,
    force: bool = False,
    progress: bool = True,
    eval_split: ArraySplit | None = None,
) -> list[dict]:
    """Train (or resume) K >= 1 members that differ only in seed as one stacked step; returns
    each member's final metrics (its result.json), in order.

    Members whose checkpoints stand at different steps (a cohort interrupted and partly
    resumed alone) are trained one after another instead, each from its own checkpoint.
    """
    configs, workdirs = list(configs), [Path(w) for w in workdirs]
    if not configs or len(configs) != len(workdirs):
        raise JaxdivError(f"train_members got {len(configs)} configs for {len(workdirs)} workdirs")
    if len({cohort_key(c) for c in configs}) > 1:
        raise JaxdivError(
            "train_members stacks members whose configs differ only in seed and name; train "
            "the others separately"
        )
    if len(set(workdirs)) < len(workdirs):
        raise JaxdivError("train_members got the same workdir twice; give each member its own")
    for w in workdirs:
        check_workdir(w)
    config, k = configs[0], len(configs)
    setup = build_setup(config)
    if eval_split is None and config.data.get("eval_split"):
        eval_split = streaming.eval_split(config.data, config.data.eval_split)
    source = config.get("finetune_from")
    if source:
        finetune.check_source(source)
    for c, w in zip(configs, workdirs, strict=True):
        prepare_workdir(c, w, force=force)

    # Checkpoints: each member's own orbax manager in WORKDIR/checkpoints.
    ckpts = [
        Checkpointer(w, every_steps=config.checkpoint_every_steps, keep=config.keep_checkpoints)
        for w in workdirs
    ]
    found = [
        _newest_intact(setup, c, w, resuming=True) if c.all_steps() else (None, None)
        for c, w in zip(ckpts, workdirs, strict=True)
    ]
    latest = [int(step or 0) for step, _ in found]
    is_main = jax.process_index() == 0
    if len(set(latest)) > 1:
        del found
        for c in ckpts:
            c.close()
        if is_main:
            print(f"members at different checkpoints {latest}; they train one after another")
        return [
            train(c, w, progress=progress, eval_split=eval_split)
            for c, w in zip(configs, workdirs, strict=True)
        ]
    start = latest[0]

    # State: restored, or initialised (and grafted onto a pre-trained backbone), then stacked.
    shardings = state_shardings(setup, k)
    seeds = [int(c.seed) for c in configs]
    keys = [jax.random.split(jax.random.PRNGKey(s)) for s in seeds]
    if start:
        states = [state for _, state in found]
    else:
        states = [init_state(setup, init_key) for init_key, _ in keys]
        if source:
            backbone, source_model = pretrained_backbone(source)
            states = [
                jax.device_put(
                    finetune.start_from(s, backbone, source, source_model, config.model.name),
                    state_shardings(setup),
                )
                for s in states
            ]
    state = states[0] if k == 1 else stack_members(states, shardings)
    del states, found
    step_key = mesh_lib.put_global(
        np.asarray(keys[0][1]) if k == 1 else np.stack([np.asarray(sk) for _, sk in keys]),
        key_sharding(setup.mesh, k),
    )
    members_of = _unstacker(setup, k)

    # Metrics: only the main process writes; a resumed member remembers what it had logged.
    writers = [MetricWriter(w, resume_step=start, enabled=is_main) for w in workdirs]
    records = [read_metrics(w) if is_main else [] for w in workdirs]
    last = [latest_values(r, up_to=start) for r in records]

    batches = MemberBatches(setup, seeds)
    update = make_train_step(setup, k, shardings)
    predict_fn = (
        mesh_lib.host_io(make_predict_fn(setup.method, setup.mesh), setup.mesh)
        if eval_split is not None
        else None
    )

    def evaluate(member_state: dict) -> dict[str, float]:
        logits, _ = predict_split(
            setup.method,
            _variables(member_state),
            eval_split,
            setup.mesh,
            batch_size=int(config.get("eval_batch_size", 500)),
            predict_fn=predict_fn,
        )
        if logits is None:
            return {}
        m = accuracy_and_loss(logits, eval_split.labels)
        return {"val_accuracy": m["accuracy"], "val_loss": m["loss"]}

    total, bs = setup.total_steps, int(config.batch_size)
    log_every = max(1, int(config.log_every_steps))
    eval_every = int(config.get("eval_every_steps", 0))
    ckpt_every = max(1, int(config.checkpoint_every_steps))
    names = [str(c.get("name", w.name)) for c, w in zip(configs, workdirs, strict=True)]
    bar = tqdm(
        total=total,
        initial=start,
        unit="step",
        disable=not (progress and is_main),
        desc=names[0] if k == 1 else f"{k} members",
        mininterval=2.0,
        dynamic_ncols=True,
    )
    pending = _resumed_pending(workdirs, start, log_every, total, is_main)
    t_log, steps_since = time.perf_counter(), 0
    t_train = time.perf_counter()
    try:
        for step in range(start, total):
            state, metrics = update(state, batches(step), step_key)
            pending.append(metrics)
            steps_since += 1
            done = step + 1
            if done % log_every == 0 or done == total:
                host = jax.device_get(pending)
                dt = max(time.perf_counter() - t_log, 1e-9)
                means = []
                for i in range(k):
                    pick = (lambda v: v) if k == 1 else (lambda v, i=i: v[i])
                    mean = {
                        f"train_{n}": float(np.mean([pick(m[n]) for m in host])) for n in host[0]
                    }
                    mean["images_per_sec"] = steps_since * bs / dt
                    mean["learning_rate"] = float(setup.lr_schedule(done - 1))
                    if not np.isfinite(mean.get("train_loss", 0.0)):
                        who = f" (member {names[i]})" if k > 1 else ""
                        raise JaxdivError(
                            f"training diverged at step {done}{who} (loss {mean['train_loss']}); "
                            "lower --config.optimizer.learning_rate or check the inputs"
                        )
                    means.append(mean)
                for i, mean in enumerate(means):
                    last[i].update(mean)
                    writers[i].write(done, mean)
                bar.set_postfix(
                    loss=f"{np.mean([m.get('train_loss', np.nan) for m in means]):.3f}",
                    img_s=f"{k * steps_since * bs / dt:.0f}",
                    refresh=False,
                )
                pending, t_log, steps_since = [], time.perf_counter(), 0
            if (
                eval_split is not None
                and eval_every > 0
                and done % eval_every == 0
                and done != total
            ):
                for i, member_state in enumerate(members_of(state)):
                    ev = evaluate(member_state)
                    last[i].update(ev)
                    writers[i].write(done, ev)
            if done % ckpt_every == 0 or done == total:
                if pending and is_main:
                    host = jax.device_get(pending)
                    for i, (c, w) in enumerate(zip(ckpts, workdirs, strict=True)):
                        rows = [{n: v if k == 1 else v[i] for n, v in m.items()} for m in host]
                        save_pending(w, done, rows, c.all_steps())
                _save(ckpts, done, members_of(state))
            bar.update(1)
        bar.close()
        finals = members_of(state)
        if any(c.latest_step() != total for c in ckpts):
            _save(ckpts, total, finals)
    except BaseException:
        for w in writers:
            w.close()
        raise
    finally:
        for c in ckpts:
            c.close()

    # Results: the same result.json whether this call ran the steps or found them done.
    seconds = time.perf_counter() - t_train
    results = []
    try:
        for i, workdir in enumerate(workdirs):
            result = {"step": total, "train_seconds_this_run": seconds}
            if start >= total and is_main and (workdir / "result.json").exists():
                previous = json.loads((workdir / "result.json").read_text())
                result["train_seconds_this_run"] = previous.get("train_seconds_this_run", seconds)
            result.update({key: v for key, v in last[i].items() if key.startswith("train_")})
            if eval_split is not None:
                ev = evaluate(finals[i])
                logged = any(r["step"] == total and "val_loss" in r for r in records[i])
                if start < total or not logged:
                    writers[i].write(total, ev)
                result.update(ev)
            if is_main:
                write_json_atomic(workdir / "result.json", result)
            results.append(result)
    finally:
        for w in writers:
            w.close()
    return results
