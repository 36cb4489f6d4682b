"""Train and predict every member of a population, one failure never stopping the rest.

Each member trains in ``WORKDIR/members/<name>`` (resuming from its checkpoint after an
interruption), then writes its predictions into the population's store. Members already
in the store for every split are skipped; a member that fails is recorded in
``WORKDIR/failures.json`` with its error, and the others go on.

Strategy: on XLA:CPU members train one after another (``jaxdiv.train.loop.train``) as
separate calls of the compiled step (batched-weight convolutions are much slower there, see
design.md), sharing compilations through JAX's persistent compilation cache. On GPU/TPU
(``strategy="vmap"``), the members that differ only in their seed (a seed cohort,
``loop.cohort_key``) train together as one member-stacked step
(``jaxdiv.train.loop.train_members``); a cohort that fails leaves its members to train one
by one, each resuming from the checkpoints the cohort wrote.
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
from jaxdiv.population.spec import Member, PretrainRun, pretrain_dir
from jaxdiv.store.predict import predict_member
from jaxdiv.store.splits import store_split_name
from jaxdiv.store.store import Store
from jaxdiv.train.loop import cohort_key, train, train_members

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


def cohorts(members: Sequence[Member]) -> list[list[Member]]:
    """Groups of two or more members whose configs differ only in seed (and name)."""
    groups: dict[str, list[Member]] = {}
    for m in members:
        groups.setdefault(cohort_key(m.config), []).append(m)
    return [g for g in groups.values() if len(g) > 1]


def remaining_members(todo: Sequence[Member], outcomes: Sequence[MemberOutcome]) -> int:
    """Members of ``todo`` without an outcome yet (the ETA's count)."""
    done = {o.name for o in outcomes}
    return sum(m.name not in done for m in todo)


def _error_message(err: BaseException) -> str:
    return str(err) if isinstance(err, JaxdivError) else f"{type(err).__name__}: {err}"


def _train_cohorts(todo, members_dir: Path, progress: bool, log) -> set[str]:
    """Train each seed cohort of ``todo`` as one stacked step; the names it finished."""
    finished: set[str] = set()
    for group in cohorts(todo):
        names = [m.name for m in group]
        log(f"  training cohort of {len(group)} ({', '.join(names)}) as one stacked step")
        try:
            train_members(
                [m.config for m in group],
                [members_dir / n for n in names],
                progress=progress,
            )
        except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - logged, then retried
            if isinstance(err, KeyboardInterrupt):
                raise
            log(f"  cohort {names} failed ({_error_message(err)}); its members train one by one")
            continue
        finished.update(names)
    return finished


def _train_pretraining(
    runs: Sequence[PretrainRun],
    todo: Sequence[Member],
    workdir: Path,
    failures: dict,
    progress: bool,
    log,
) -> dict[str, str]:
    """Train each pre-training run a member still to train fine-tunes from (resuming, or
    finding it finished); returns the failed ones' directories -> error."""
    needed = {str(m.config.get("finetune_from") or "") for m in todo}
    failed: dict[str, str] = {}
    for run in runs:
        pdir = pretrain_dir(workdir, run.name)
        if pdir not in needed:
            continue
        key = f"pretrain:{run.name}"
        log(
            f"[pretrain] {run.name} ({run.config.method.name}, {run.config.model.name}, "
            f"{run.config.data.train_split})"
        )
        try:
            train(run.config, pdir, progress=progress)
            failures.pop(key, None)
        except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - recorded, not hidden
            if isinstance(err, KeyboardInterrupt):
                raise
            failed[pdir] = msg = _error_message(err)
            failures[key] = {"error": msg, "traceback": traceback.format_exc()}
            log(f"  pre-training run {run.name} FAILED: {msg}")
    return failed


def run_population(
    members: Sequence[Member],
    workdir: str | Path,
    store: Store,
    splits: Sequence[str],
    *,
    population: str,
    strategy: str = "auto",
    progress: bool = True,
    pretraining: Sequence[PretrainRun] = (),
    log=print,
) -> list[MemberOutcome]:
    """Train and predict every member (after the pre-training runs they fine-tune from);
    returns one outcome per member, in order. A member whose pre-training run failed fails
    with that run's error; the others go on."""
    workdir = Path(workdir)
    strategy = choose_strategy(strategy)
    base = members[0].name
    failures_path = workdir / "failures.json"
    failures = json.loads(failures_path.read_text()) if failures_path.exists() else {}
    outcomes: list[MemberOutcome] = []
    todo = [
        m for m in members if not all(store.has_member(m.name, store_split_name(s)) for s in splits)
    ]
    pretrain_failed = _train_pretraining(pretraining, todo, workdir, failures, progress, log)
    trained_together: set[str] = set()
    if strategy == "vmap" and len(todo) > 1:
        trained_together = _train_cohorts(todo, workdir / "members", progress, log)
    started, trained = time.perf_counter(), 0
    for i, member in enumerate(members, 1):
        if member not in todo:
            outcomes.append(MemberOutcome(member.name, "skipped"))
            continue
        remaining = remaining_members(todo, outcomes)
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
            source = str(member.config.get("finetune_from") or "")
            if source in pretrain_failed:
                raise JaxdivError(
                    f"its pre-training run {Path(source).name!r} failed "
                    f"({pretrain_failed[source]}); fix that and run again"
                )
            if member.name not in trained_together:
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
            msg = _error_message(err)
            failures[member.name] = {"error": msg, "traceback": traceback.format_exc()}
            outcomes.append(MemberOutcome(member.name, "failed", time.perf_counter() - t0, msg))
            log(f"  member {member.name} FAILED: {msg} (details in {failures_path})")
        trained += 1
        write_json_atomic(failures_path, failures)
    return outcomes
