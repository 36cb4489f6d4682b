"""``jaxdiv study``: train a population, predict it into its store, analyse, report.

The one stage that runs all the others, in data-flow order (so it alone reaches the report
room): the population scheduler (train + predict), ``run_analyze``, ``run_represent``, then
``jaxdiv.report.html.write_report`` on their folders. The three write into one staging folder
and are published together once all are written (``jaxdiv.stages.publish``): a failure in any
leaves the previous run's three as they were. Members without embeddings (imported ones) are
analysed and reported; the representation stage leaves them out (or skips itself when fewer
than two remain). One study at a time holds a workdir; leftovers of killed runs are cleaned
at the start. When a member failed, the others are still analysed and reported (the report
lists the failures) and ``jaxdiv study`` exits with status 1.

Every stage is idempotent: running the study again continues where it stopped (members
resume from their checkpoints, finished members are skipped) and redoes nothing finished.
A member whose config changed since it was trained or predicted (run-time keys aside) is
never reported from its old results: the study refuses it with the differences, and
``force=True`` (``jaxdiv study --force``) moves its old run to
``WORKDIR/members/<name>/superseded/<time>/`` and its store entries to
``WORKDIR/store/superseded/<time>/<name>`` before retraining it.

Split strings become store names by ``jaxdiv.store.splits.store_split_name`` (``test``
stays, ``test[:300]`` is ``test.0-300``), so a report split and a calibration split of
different examples (``test[9800:]`` and ``test[:9800]``) never share a name.

``pop.shift_splits`` (e.g. ``["test:gaussian_noise:3", "test:fog:3"]``) lists corrupted
splits of the report split (``jaxdiv.data.shift``): every member is predicted on them too,
the analysis gets its shift pass (``jaxdiv.stages.shift``: temperatures from the clean
calibration split) and the report its shift section.

    WORKDIR/population.json     the expanded members (name, category, dataset, differences)
                                and pre-training runs
    WORKDIR/members/<name>/     each member's run directory
    WORKDIR/pretrain/<name>/    each pre-training run (``pop.pretrain``), never predicted
    WORKDIR/store/              the prediction store (validation and test)
    WORKDIR/failures.json       members that failed, with their errors
    WORKDIR/analysis/           pairs.csv, members.csv, matrices, summary.json (shift/: the
                                shift pass)
    WORKDIR/representation/     probes on mixed/compressed/stacked embeddings, CKA
    WORKDIR/report/index.html   the report with its figures
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import ml_collections

from jaxdiv.data.datasets import resolve_split_source
from jaxdiv.data.shift import parse_shift
from jaxdiv.errors import JaxdivError
from jaxdiv.files import write_json_atomic
from jaxdiv.population.scheduler import enable_compilation_cache, run_population
from jaxdiv.population.spec import (
    expand_population,
    expand_pretraining,
    pretrain_dir,
    resolve_pretrained,
)
from jaxdiv.report.html import write_report
from jaxdiv.stages.analyze import run_analyze
from jaxdiv.stages.publish import Publication, clean_leftovers, study_lock
from jaxdiv.stages.represent import TooFewMembers, run_represent
from jaxdiv.store.predict import stale_entries, stale_run
from jaxdiv.store.splits import store_split_name
from jaxdiv.store.store import Store
from jaxdiv.train.checkpoint import has_checkpoint
from jaxdiv.train.workdir import prepare_workdir, supersede_run


def _population_record(members) -> list[dict]:
    return [
        {
            "name": m.name,
            "category": m.category or "Base",
            "method": m.config.method.name,
            "architecture": m.config.model.name,
            "dataset": m.config.data.dataset,
            "train_split": m.config.data.train_split,
            "differences": list(m.differences),
        }
        for m in members
    ]


def _changed_pretraining(runs, workdir: Path) -> dict[str, list[str]]:
    """Pre-training runs whose checkpoints come from another config: directory -> differences."""
    changed = {}
    for run in runs:
        pdir = Path(pretrain_dir(workdir, run.name))
        diff = stale_run(pdir, run.config) if has_checkpoint(pdir) else []
        if diff:
            changed[str(pdir)] = diff
    return changed


def _changed_members(members, workdir: Path, store: Store, pretrain_changed) -> dict:
    """Members whose run or store entries come from another config (or whose pre-training
    run changed): name -> differences."""
    changed = {}
    for m in members:
        source = str(m.config.get("finetune_from") or "")
        if source in pretrain_changed:
            changed[m.name] = [f"pre-training run {Path(source).name} changed"] + list(
                pretrain_changed[source]
            )
            continue
        mdir = workdir / "members" / m.name
        diff = stale_run(mdir, m.config) if has_checkpoint(mdir) else []
        diff = diff or stale_entries(store, m.name, m.config)
        if diff:
            changed[m.name] = diff
    return changed


def _supersede(members, changed, runs, pretrain_changed, workdir: Path, store: Store, log):
    """Move each changed pre-training run, and each changed member's old run and store
    entries, aside (never deleted)."""
    for run in runs:
        pdir = Path(pretrain_dir(workdir, run.name))
        if str(pdir) in pretrain_changed:
            prepare_workdir(run.config, pdir, force=True)
            log(f"  pre-training run {run.name} changed; old run -> {pdir / 'superseded'}")
    for m in members:
        if m.name in changed:
            mdir = workdir / "members" / m.name
            if str(m.config.get("finetune_from") or "") in pretrain_changed:
                supersede_run(mdir)  # same config, but its starting point changed
            prepare_workdir(m.config, mdir, force=True)
            moved = store.supersede_member(m.name)
            log(f"  {m.name} changed ({'; '.join(changed[m.name][:3])}); old results -> {moved}")


def _shift_splits(pop, report_split: str) -> list[str]:
    """``pop.shift_splits``: corrupted splits ``<split>:<corruption>:<severity>`` of the
    report split or of a slice of it (checked on the dataset's info, before any training),
    predicted with the others and analysed in the analysis' shift pass."""
    shifts = [str(x) for x in (pop.get("shift_splits") or [])]
    if not shifts:
        return []
    data = pop.base.data
    inside = _ranges(data, report_split)
    for x in shifts:
        shift = parse_shift(x)
        if shift is None or not _ranges(data, shift.source) <= inside:
            raise JaxdivError(
                f"shift_splits entry {x!r} must be <split>:<corruption>:<severity> with the "
                f"report split {report_split!r} or a slice of it as <split>, e.g. "
                f"{report_split}:fog:3"
            )
    return list(dict.fromkeys(shifts))


def _ranges(data_cfg, split: str) -> set[tuple[str, int]]:
    """The (split name, index) examples a split string selects, from the dataset's info."""
    source = resolve_split_source(data_cfg.dataset, split, data_cfg.get("data_dir"))
    return {(name, i) for name, lo, hi in source["range"] for i in range(lo, hi)}


def run_study(
    pop: ml_collections.ConfigDict,
    workdir: str | Path,
    *,
    progress: bool = True,
    strategy: str = "auto",
    force: bool = False,
    log=print,
) -> dict:
    """Run (or continue) the whole study; returns a summary of what happened. A member
    changed since its results were made is refused, or with ``force`` retrained.

    One study at a time holds the workdir (``jaxdiv.stages.publish.study_lock``); leftovers
    of killed runs are cleaned first; analysis, representation and report are published
    together (``Publication``) once all three are written. ``failed`` in the result names
    the members that failed (the others are analysed and reported)."""
    with ExitStack() as stack:
        return _run_study(pop, Path(workdir), stack, progress, strategy, force, log)


def _run_study(pop, workdir: Path, stack: ExitStack, progress, strategy, force, log) -> dict:
    t0 = time.perf_counter()
    # validates everything before any training
    members = resolve_pretrained(expand_population(pop), workdir)
    pretraining = expand_pretraining(pop)
    name = str(pop.get("name", "population"))
    store = Store(workdir / "store", population=name)
    store.ensure()  # refuses a store of another population
    pretrain_changed = _changed_pretraining(pretraining, workdir)
    changed = _changed_members(members, workdir, store, pretrain_changed)
    if changed and not force:
        shown = "; ".join(
            f"{n} ({', '.join(d[:3])}{', ...' if len(d) > 3 else ''})" for n, d in changed.items()
        )
        raise JaxdivError(
            f"{len(changed)} member(s) changed since their results were made: {shown}; "
            f"retrain them with `jaxdiv study --config=CONFIG --workdir={workdir} --force` "
            "(old runs and store entries are moved aside)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    stack.enter_context(study_lock(workdir))
    clean_leftovers(workdir, log)
    record_path = workdir / "population.json"
    pretrain_record = [
        {
            "name": r.name,
            "method": r.config.method.name,
            "architecture": r.config.model.name,
            "train_split": r.config.data.train_split,
        }
        for r in pretraining
    ]
    write_json_atomic(
        record_path,
        {"name": name, "members": _population_record(members), "pretraining": pretrain_record},
    )
    enable_compilation_cache(workdir / ".jax_cache")

    splits = list(pop.get("splits", ["validation", "test"]))
    analysis_cfg = pop.get("analysis", ml_collections.ConfigDict())
    report_split = str(analysis_cfg.get("split", "test"))
    calib = analysis_cfg.get("calibration_split", "validation")
    if report_split not in splits or (calib and calib not in splits):
        raise JaxdivError(
            f"analysis.split {report_split!r} and analysis.calibration_split {calib!r} must be "
            f"among the predicted splits {splits}"
        )
    shifts = _shift_splits(pop, report_split)
    log(f"study {name!r}: {len(members)} members -> {workdir}")
    _supersede(members, changed, pretraining, pretrain_changed, workdir, store, log)
    outcomes = run_population(
        members,
        workdir,
        store,
        splits + shifts,
        population=name,
        strategy=strategy,
        progress=progress,
        pretraining=pretraining,
        log=log,
    )
    failed = [o for o in outcomes if o.status == "failed"]
    # the store names data splits such as ``test[:256]`` as ``test.0-256``
    report_split = store_split_name(report_split)
    calib = store_split_name(calib) if calib else None
    splits = [store_split_name(x) for x in splits]
    finished = store.members(report_split)
    if len(finished) < 2:
        raise JaxdivError(
            f"only {len(finished)} member(s) finished; the analysis needs two. "
            f"See {workdir / 'failures.json'}"
        )
    log(f"analysing {len(finished)} members on {report_split!r} (calibration: {calib})")
    publication = stack.enter_context(Publication(workdir))
    summary = run_analyze(
        store.root,
        report_split,
        calib,
        publication.path("analysis"),
        bootstrap=int(analysis_cfg.get("bootstrap", 0)),
        seed=int(pop.get("seed", 0)),
        shift_splits=[store_split_name(x) for x in shifts],
    )
    represent = pop.get("represent", {})
    if represent is not False and represent is not None:
        log("representation analysis (probes on embeddings, CKA)")
        options = dict(represent) if represent is not True else {}
        # intervals of the representation gains from the analysis' resamples unless set
        options.setdefault("bootstrap", int(analysis_cfg.get("bootstrap", 0)))
        # probes are fitted on a split other than the one they are scored on
        fit_split = calib or next((x for x in splits if x != report_split), None)
        if fit_split is None:
            raise JaxdivError(
                "the representation stage needs a second predicted split "
                "(e.g. validation) to fit its probes on; add it to `splits`"
            )
        try:
            run_represent(
                store.root,
                publication.path("representation"),
                train_split=fit_split,
                eval_split=report_split,
                base=members[0].name,
                seed=int(pop.get("seed", 0)),
                log=log,
                **options,
            )
        except TooFewMembers as err:
            log(f"representation stage skipped: {err}")
    report = None
    if bool(pop.get("report", True)):
        log("writing the report")
        write_report(
            workdir,
            pop,
            analysis=publication.path("analysis"),
            representation=publication.path("representation"),
            out=publication.path("report"),
        )
        report = workdir / "report" / "index.html"
    publication.commit()
    result = {
        "population": name,
        "members": len(members),
        "finished": len(finished),
        "failed": [o.name for o in failed],
        "seconds": time.perf_counter() - t0,
        "report": str(report) if report else None,
        "gain_vs_ei_by_category": (summary.get("categories") or {}).get("fit"),
        "gain_vs_ei_all_pairs": summary.get("gain_vs_ei_all_pairs"),
    }
    write_json_atomic(workdir / "study.json", result)
    log(f"done in {result['seconds'] / 60:.1f} min; report: {report}")
    return result
