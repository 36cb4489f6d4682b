"""The trainer: one jitted step under a device mesh, checkpointed, resumable, logged.

Everything a step needs is derived from (seed, step): the batch (random access into the
loader's shuffled order) and the PRNG key (``fold_in(seed_key, step)``), so a run resumed
from a checkpoint continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxdiv.data import streaming
from jaxdiv.data.datasets import ArraySplit
from jaxdiv.errors import JaxdivError, choices_error
from jaxdiv.files import write_json_atomic
from jaxdiv.methods import build_method
from jaxdiv.methods.base import Method
from jaxdiv.models import build_model
from jaxdiv.train import finetune
from jaxdiv.train import mesh as mesh_lib
from jaxdiv.train.checkpoint import Checkpointer
from jaxdiv.train.evaluate import accuracy_and_loss, make_predict_fn, predict_split
from jaxdiv.train.mesh import check_batch, host_io, make_mesh, replicated, shard_batch
from jaxdiv.train.metrics import MetricWriter
from jaxdiv.train.optim import build_optimizer, learning_rate_schedule
from jaxdiv.train.workdir import prepare_workdir

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass
class Setup:
    """Everything built from a config before training: data, model, method, optimiser."""

    config: ml_collections.ConfigDict
    mesh: Any
    method: Method
    num_classes: int
    train_split: ArraySplit | None
    steps_per_epoch: int
    total_steps: int
    tx: optax.GradientTransformation
    lr_schedule: Any


def validate_names(config: ml_collections.ConfigDict) -> None:
    """Unknown model, method or optimizer names fail before any data is read."""
    from jaxdiv.methods import METHODS
    from jaxdiv.models import MODEL_NAMES
    from jaxdiv.train.optim import OPTIMIZERS

    for kind, name, valid in (
        ("model", config.model.name, MODEL_NAMES),
        ("method", config.method.name, METHODS),
        ("optimizer", config.optimizer.name, OPTIMIZERS),
    ):
        if name not in valid:
            raise choices_error(kind, name, valid)


def build_setup(config: ml_collections.ConfigDict, *, load_train: bool = True) -> Setup:
    """Validate the config and build the pieces (fails fast, before any compute)."""
    dtype = config.get("compute_dtype", "float32")
    if dtype not in DTYPES:
        raise JaxdivError(f"unknown compute_dtype {dtype!r}; valid choices: {', '.join(DTYPES)}")
    validate_names(config)
    mesh = make_mesh(config.get("mesh"))
    check_batch(int(config.batch_size), mesh)
    split = streaming.train_split(config.data, load=load_train)
    num_classes = split.num_classes
    model_kwargs = dict(config.model.get("kwargs", {}) or {})
    model = build_model(config.model.name, num_classes, dtype=DTYPES[dtype], **model_kwargs)
    method = build_method(config, model, num_classes)
    steps_per_epoch = len(split) // int(config.batch_size)
    if steps_per_epoch < 1:
        raise JaxdivError(
            f"batch size {config.batch_size} is larger than the {len(split)} training examples"
        )
    if int(config.get("num_steps", -1)) > 0:
        total = int(config.num_steps)
    else:
        total = max(1, math.ceil(float(config.num_epochs) * steps_per_epoch))
    tx = build_optimizer(config.optimizer, total, steps_per_epoch)
    schedule = learning_rate_schedule(config.optimizer, total, steps_per_epoch)
    return Setup(config, mesh, method, num_classes, split, steps_per_epoch, total, tx, schedule)


def _init_fn(setup: Setup):
    h, w, c = setup.train_split.images.shape[1:]

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


def state_shardings(setup: Setup) -> Any:
    """Each train-state leaf's sharding from ``config.mesh.rules`` (default: replicated)."""
    abstract = jax.eval_shape(_init_fn(setup), jax.random.PRNGKey(0))
    return mesh_lib.state_shardings(abstract, setup.mesh, setup.config.get("mesh"))


def init_state(setup: Setup, rng: jax.Array) -> dict:
    """The train state pytree {step, params, state, opt_state}, laid out on the mesh."""
    return jax.jit(_init_fn(setup), out_shardings=state_shardings(setup))(rng)


def train_step_fn(setup: Setup):
    """The un-jitted step (state, batch, key) -> (state, metrics); see make_train_step."""
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


def make_train_step(setup: Setup):
    """Jitted (state, batch, key) -> (state, metrics); batch sharded along ``data``."""
    rep = replicated(setup.mesh)
    return jax.jit(
        train_step_fn(setup), out_shardings=(state_shardings(setup), rep), donate_argnums=(0,)
    )


def _variables(state: dict) -> dict:
    return {"params": state["params"], **state["state"]}


def train(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    *,
    force: bool = False,
    progress: bool = True,
    eval_split: ArraySplit | None = None,
) -> dict:
    """Train (or resume) the run in ``workdir``; returns the final metrics (result.json)."""
    workdir = Path(workdir)
    setup = build_setup(config)
    if eval_split is None and config.data.get("eval_split"):
        eval_split = streaming.eval_split(config.data, config.data.eval_split)
    if config.get("finetune_from"):
        finetune.check_source(config.finetune_from)
    prepare_workdir(config, workdir, force=force)

    key = jax.random.PRNGKey(int(config.seed))
    init_key, step_key = jax.random.split(key)
    state = init_state(setup, init_key)
    ckpt = Checkpointer(
        workdir, every_steps=config.checkpoint_every_steps, keep=config.keep_checkpoints
    )
    start = ckpt.latest_step()
    if start is not None:
        state = ckpt.restore(state, start)
        state = jax.device_put(state, state_shardings(setup))
    elif config.get("finetune_from"):
        state = finetune.start_from(state, config.finetune_from, config.model.name)
        state = jax.device_put(state, state_shardings(setup))
    start = int(start or 0)
    is_main = jax.process_index() == 0
    writer = MetricWriter(workdir, resume_step=start, enabled=is_main)

    loader = streaming.train_loader(
        setup.train_split, int(config.batch_size), int(config.seed), config.data
    )
    train_step = make_train_step(setup)
    predict_fn = (
        host_io(make_predict_fn(setup.method, setup.mesh), setup.mesh)
        if eval_split is not None
        else None
    )
    eval_bs = int(config.get("eval_batch_size", 500))

    def evaluate(state) -> dict[str, float]:
        logits, _ = predict_split(
            setup.method,
            _variables(state),
            eval_split,
            setup.mesh,
            batch_size=eval_bs,
            predict_fn=predict_fn,
        )
        if logits is None:
            return {}
        m = accuracy_and_loss(logits, eval_split.labels)
        return {"val_accuracy": m["accuracy"], "val_loss": m["loss"]}

    total = setup.total_steps
    log_every = max(1, int(config.log_every_steps))
    eval_every = int(config.get("eval_every_steps", 0))
    ckpt_every = max(1, int(config.checkpoint_every_steps))
    bar = tqdm(
        total=total,
        initial=start,
        unit="step",
        disable=not (progress and is_main),
        desc=str(config.get("name", "train")),
        mininterval=2.0,
        dynamic_ncols=True,
    )
    pending: list[dict] = []
    t_log, steps_since = time.perf_counter(), 0
    last: dict[str, float] = {}
    t_train = time.perf_counter()
    for step in range(start, total):
        batch = shard_batch(loader.batch(step), setup.mesh)
        state, metrics = train_step(state, batch, step_key)
        pending.append(metrics)
        steps_since += 1
        done = step + 1
        if done % log_every == 0 or done == total:
            host = jax.device_get(pending)
            mean = {f"train_{k}": float(np.mean([m[k] for m in host])) for k in host[0]}
            dt = time.perf_counter() - t_log
            mean["images_per_sec"] = steps_since * int(config.batch_size) / max(dt, 1e-9)
            mean["learning_rate"] = float(setup.lr_schedule(done - 1))
            if not np.isfinite(mean.get("train_loss", 0.0)):
                raise JaxdivError(
                    f"training diverged at step {done} (loss {mean['train_loss']}); lower "
                    "--config.optimizer.learning_rate or check the inputs"
                )
            last.update(mean)
            writer.write(done, mean)
            bar.set_postfix(
                loss=f"{mean.get('train_loss', float('nan')):.3f}",
                img_s=f"{mean['images_per_sec']:.0f}",
                refresh=False,
            )
            pending, t_log, steps_since = [], time.perf_counter(), 0
        if eval_split is not None and eval_every > 0 and done % eval_every == 0 and done != total:
            ev = evaluate(state)
            last.update(ev)
            writer.write(done, ev)
        if done % ckpt_every == 0 or done == total:
            ckpt.save(done, state, force=True)
        bar.update(1)
    bar.close()
    if start >= total and ckpt.latest_step() != total:
        ckpt.save(total, state, force=True)
    ckpt.close()
    result = {"step": total, "train_seconds_this_run": time.perf_counter() - t_train}
    result.update({k: v for k, v in last.items() if k.startswith("train_")})
    if eval_split is not None:
        ev = evaluate(state)
        writer.write(total, ev)
        result.update(ev)
    writer.close()
    if is_main:
        write_json_atomic(workdir / "result.json", result)
    return result


def restore_variables(
    config: ml_collections.ConfigDict, workdir: str | Path, setup: Setup | None = None
) -> tuple[Setup, dict, int]:
    """The latest checkpoint's model variables (params plus state) for inference."""
    setup = setup or build_setup(config)
    ckpt = Checkpointer(workdir, every_steps=1, keep=config.keep_checkpoints)
    step = ckpt.latest_step()
    if step is None:
        raise JaxdivError(f"no checkpoint in {Path(workdir) / 'checkpoints'}; run `train` first")
    abstract = jax.eval_shape(lambda k: init_state(setup, k), jax.random.PRNGKey(0))
    abstract = jax.tree_util.tree_map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
        abstract,
        state_shardings(setup),
    )
    state = ckpt.restore(abstract, step)
    ckpt.close()
    return setup, _variables(state), int(step)
