"""Train a cohort of members that differ only in their seed as one vmapped step.

On GPU/TPU, stacking K members' parameters and running ``jax.vmap(step)`` fills the device
far better than K small steps. On XLA:CPU batched-weight convolutions are much slower than
separate calls (design.md), so the scheduler uses this only off CPU unless asked.

Each member keeps its own run directory: the cohort writes every member's config, metrics
and orbax checkpoints exactly where a sequential run would, so ``train()`` afterwards finds
the finished checkpoint (or resumes a member alone if the cohort was interrupted).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from jaxdiv.data.loader import TrainLoader
from jaxdiv.population.spec import Member
from jaxdiv.train.checkpoint import Checkpointer
from jaxdiv.train.loop import build_setup, init_state, train_step_fn
from jaxdiv.train.metrics import MetricWriter
from jaxdiv.train.workdir import prepare_workdir


def cohort_key(member: Member) -> str:
    """Members with equal keys differ only in seed (and name) and can share one step."""
    d = json.loads(member.config.to_json_best_effort())
    d.pop("seed", None)
    d.pop("name", None)
    return json.dumps(d, sort_keys=True)


def cohorts(members: Sequence[Member]) -> list[list[Member]]:
    """Groups of two or more members that can be stacked."""
    groups: dict[str, list[Member]] = {}
    for m in members:
        groups.setdefault(cohort_key(m), []).append(m)
    return [g for g in groups.values() if len(g) > 1]


def _stack(trees):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def _unstack(tree, k: int):
    return [jax.tree_util.tree_map(lambda x, i=i: x[i], tree) for i in range(k)]


def train_cohort(
    group: Sequence[Member], members_dir: str | Path, *, progress: bool = True, log=print
) -> None:
    """Train ``group`` together; afterwards each member's workdir holds its checkpoints."""
    members_dir = Path(members_dir)
    config = group[0].config
    setup = build_setup(config)
    workdirs = [members_dir / m.name for m in group]
    ckpts = []
    for m, w in zip(group, workdirs, strict=True):
        prepare_workdir(m.config, w, force=False)
        ckpts.append(
            Checkpointer(w, every_steps=config.checkpoint_every_steps, keep=config.keep_checkpoints)
        )
    states, step_keys = [], []
    for m in group:
        init_key, step_key = jax.random.split(jax.random.PRNGKey(int(m.config.seed)))
        states.append(init_state(setup, init_key))
        step_keys.append(step_key)
    latest = [c.latest_step() for c in ckpts]
    start = 0
    if all(s is not None for s in latest) and len(set(latest)) == 1:
        start = int(latest[0])
        states = [c.restore(s, start) for c, s in zip(ckpts, states, strict=True)]
    elif any(s is not None for s in latest):
        log(
            f"  cohort {[m.name for m in group]}: members at different checkpoints; "
            "they will resume one by one"
        )
        for c in ckpts:
            c.close()
        return
    total = setup.total_steps
    k = len(group)
    log(f"  training cohort of {k} ({', '.join(m.name for m in group)}) with jax.vmap")
    loaders = [
        TrainLoader(setup.train_split, int(config.batch_size), seed=int(m.config.seed))
        for m in group
    ]
    writers = [MetricWriter(w, resume_step=start) for w in workdirs]
    batch_sharding = NamedSharding(setup.mesh, PartitionSpec(None, "data"))
    rep = NamedSharding(setup.mesh, PartitionSpec())
    step = jax.jit(jax.vmap(train_step_fn(setup)), out_shardings=(rep, rep), donate_argnums=(0,))
    state = jax.device_put(_stack(states), rep)
    keys = jnp.stack(step_keys)
    every = max(1, int(config.checkpoint_every_steps))
    log_every = max(1, int(config.log_every_steps))
    bar = tqdm(
        total=total,
        initial=start,
        unit="step",
        disable=not progress,
        desc=f"cohort x{k}",
        mininterval=2.0,
    )
    pending = []
    for s in range(start, total):
        batches = [ld.batch(s) for ld in loaders]
        batch = jax.device_put(
            {key: np.stack([b[key] for b in batches]) for key in ("image", "label")},
            batch_sharding,
        )
        state, metrics = step(state, batch, keys)
        pending.append(metrics)
        done = s + 1
        if done % log_every == 0 or done == total:
            host = jax.device_get(pending)
            for i, w in enumerate(writers):
                w.write(
                    done,
                    {
                        f"train_{name}": float(np.mean([m[name][i] for m in host]))
                        for name in host[0]
                    },
                )
            pending = []
        if done % every == 0 or done == total:
            for c, st in zip(ckpts, _unstack(state, k), strict=True):
                c.save(done, st, force=True)
        bar.update(1)
    bar.close()
    for c, w in zip(ckpts, writers, strict=True):
        c.close()
        w.close()


def train_cohorts(
    members: Sequence[Member], members_dir: str | Path, *, progress: bool = True, log=print
) -> None:
    for group in cohorts(members):
        train_cohort(group, members_dir, progress=progress, log=log)
