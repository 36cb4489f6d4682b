"""Train and predict every member of a population, one failure never stopping the rest.

Each member trains in ``WORKDIR/members/<name>`` (resuming from its checkpoint after an
interruption), then writes its predictions into the population's store. Members already
in the store for every split are skipped; a member that fails is recorded in
``WORKDIR/failures.json`` with its error, and the others go on.

Strategy: on XLA:CPU members train one after another as separate calls of the compiled step
(batched-weight convolutions are much slower there, see design.md), sharing compilations
through JAX's persistent compilation cache. On GPU/TPU, members that differ only in their
seed can be stacked and trained together with ``jax.vmap`` (``strategy="vmap"``, see
``jaxdiv.population.cohort``).
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import jax

from jaxdiv.errors import JaxdivError
from jaxdiv.files import write_json_atomic
from jaxdiv.population.spec import Member
from jaxdiv.store.store import Store

STRATEGIES = ("auto", "sequential", "vmap")


def enable_compilation_cache(directory: str | Path) -> None:
    """Reuse compiled steps across members and runs (JAX's persistent cache)."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def choose_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise JaxdivError(f"unknown strategy {strategy!r}; valid choices: {', '.join(STRATEGIES)}")
    if strategy != "auto":
        return strategy
    return "sequential" if jax.default_backend() == "cpu" else "vmap"


@dataclasses.dataclass
class MemberOutcome:
    name: str
    status: str  # "skipped" | "trained" | "failed"
    seconds: float = 0.0
    error: str | None = None


def _member_extra(member: Member, base: str, population: str) -> dict:
    return {
        "category": member.category or "Base",
        "base": base,
        "population": population,
        "differences": list(member.differences),
    }


def _fmt(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def run_population(
    members: Sequence[Member],
    workdir: str | Path,
    store: Store,
    splits: Sequence[str],
    *,
    population: str,
    strategy: str = "auto",
    progress: bool = True,
    log=print,
) -> list[MemberOutcome]:
    """Train and predict every member; returns one outcome per member, in order."""
    from jaxdiv.predict import predict_member
    from jaxdiv.store.splits import store_split_name
    from jaxdiv.train.loop import train

    workdir = Path(workdir)
    strategy = choose_strategy(strategy)
    base = members[0].name
    failures_path = workdir / "failures.json"
    failures = json.loads(failures_path.read_text()) if failures_path.exists() else {}
    outcomes: list[MemberOutcome] = []
    todo = [
        m for m in members if not all(store.has_member(m.name, store_split_name(s)) for s in splits)
    ]
    if strategy == "vmap" and len(todo) > 1:
        from jaxdiv.population.cohort import train_cohorts

        train_cohorts(todo, workdir / "members", progress=progress, log=log)
    started, trained = time.perf_counter(), 0
    for i, member in enumerate(members, 1):
        if member not in todo:
            outcomes.append(MemberOutcome(member.name, "skipped"))
            continue
        remaining = len([m for m in todo if m not in (o.name for o in outcomes)])
        eta = ""
        if trained:
            per = (time.perf_counter() - started) / trained
            eta = f", overall ETA {_fmt(per * remaining)}"
        log(
            f"[{i}/{len(members)}] {member.name} ({member.category or 'base'}, "
            f"{member.config.method.name}, {member.config.model.name}){eta}"
        )
        t0 = time.perf_counter()
        mdir = workdir / "members" / member.name
        try:
            train(member.config, mdir, progress=progress)
            predict_member(
                member.config,
                mdir,
                store.root,
                list(splits),
                name=member.name,
                extra_info=_member_extra(member, base, population),
            )
            failures.pop(member.name, None)
            outcomes.append(MemberOutcome(member.name, "trained", time.perf_counter() - t0))
        except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - recorded, not hidden
            if isinstance(err, KeyboardInterrupt):
                raise
            msg = str(err) if isinstance(err, JaxdivError) else f"{type(err).__name__}: {err}"
            failures[member.name] = {"error": msg, "traceback": traceback.format_exc()}
            outcomes.append(MemberOutcome(member.name, "failed", time.perf_counter() - t0, msg))
            log(f"  member {member.name} FAILED: {msg} (details in {failures_path})")
        trained += 1
        write_json_atomic(failures_path, failures)
    return outcomes
