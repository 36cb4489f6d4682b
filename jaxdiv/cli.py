"""jaxdiv: train populations of image models and measure how differently they err.

Usage: python -m jaxdiv <verb> [flags] [files]

Verbs:
  train               train (or resume) one model:  --config=configs/x.py[:variant] --workdir=DIR
                      [--dry_run: compile only, for a simulated 8-device mesh; no data read]
                      (multi-process: launch/README.md)
  predict             write a trained model's logits and embeddings into a prediction store:
                      --config=... --workdir=DIR [--store=DIR (default WORKDIR/store)]
                      [--splits=validation,test] [--member=NAME]
  import-predictions  add models trained elsewhere:
                      --store=DIR --split=NAME --labels=labels.npz a.npz b.npz ...
  study               the whole population study end to end (train every member, predict,
                      analyse, report); re-running continues where it stopped:
                      --config=configs/quickstart.py --workdir=DIR
  analyze             all-pairs error statistics, ensembles and calibration of a store:
                      --store=DIR --split=test --calibration-split=validation|none --out=DIR
                      [--bootstrap=K]
  represent           linear probes on the members' embeddings (random-subset mixing,
                      compression, stacked generalisation) and linear CKA:
                      --store=DIR --out=DIR [--train-split=validation --split=test]
                      [--base=NAME] [--transfer=fewshot|coarse|none --shots=10] [--seed=0]

Config keys are overridden on the command line, e.g. --config.optimizer.learning_rate=0.05.
"""

from __future__ import annotations

import sys
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

from jaxdiv.errors import JaxdivError

VERBS = ("train", "predict", "import-predictions", "analyze", "study", "represent")

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:variant].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, store).")
_FORCE = flags.DEFINE_bool(
    "force", False, "Move a workdir's run of a different config aside and start afresh."
)
_STORE = flags.DEFINE_string("store", None, "Prediction store directory.")
_SPLITS = flags.DEFINE_list("splits", ["validation", "test"], "Splits to predict.")
_SPLIT = flags.DEFINE_string("split", "test", "Split name (import-predictions, analyze).")
_MEMBER = flags.DEFINE_string("member", None, "Member name in the store (default config.name).")
_LABELS = flags.DEFINE_string("labels", None, "labels.npz with `ids` and `labels`.")
_CALIB = flags.DEFINE_string(
    "calibration-split", "validation", "Split to fit temperatures on, or `none`."
)
_OUT = flags.DEFINE_string("out", None, "Output directory for analysis tables.")
_BOOTSTRAP = flags.DEFINE_integer("bootstrap", 0, "Bootstrap resamples for intervals (0: off).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed for bootstrap resampling.")
_BASE = flags.DEFINE_string("base", None, "Base member for per-category aggregates (analyze).")
_BAND = flags.DEFINE_list(
    "accuracy-band", None, "MIN,MAX: keep only base pairs whose other member's accuracy lies in it."
)
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")
_TRAIN_SPLIT = flags.DEFINE_string(
    "train-split", "validation", "represent: split the probes are fitted on (--split: scored on)."
)
_TRANSFER = flags.DEFINE_string(
    "transfer", "fewshot", "represent: stacked-generalisation task (fewshot, coarse or none)."
)
_SHOTS = flags.DEFINE_integer("shots", 10, "represent: labelled examples per class (transfer).")
_DRY_RUN = flags.DEFINE_bool(
    "dry_run",
    False,
    "train: compile the train step for a simulated mesh of --dry_run_devices "
    "CPU devices and print its cost; reads no data, needs no --workdir.",
)
_DRY_RUN_DEVICES = flags.DEFINE_integer("dry_run_devices", 8, "Simulated devices (--dry_run).")
_DRY_RUN_MEMBERS = flags.DEFINE_integer(
    "dry_run_members", 1, "Stacked members to compile as one vmapped step (--dry_run)."
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    None,
    "train across processes: host:port of process 0 (else "
    "$JAXDIV_COORDINATOR_ADDRESS; SLURM and TPU VM pods are detected).",
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's id in [0, num_processes).")
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed",
    "auto",
    ["auto", "off"],
    "Join a multi-process job (auto: from the flags or environment; off: always one process).",
)
_STRATEGY = flags.DEFINE_enum(
    "strategy",
    "auto",
    ["auto", "sequential", "vmap"],
    "How study trains members: one after another, or seed cohorts stacked with vmap "
    "(auto: sequential on CPU, vmap on GPU/TPU).",
)


def _require(flag, what: str):
    if flag.value is None:
        raise JaxdivError(f"--{flag.name} is required ({what})")
    return flag.value


def _config(required: bool = True):
    """The loaded config (config files load lazily; their errors become one clear line)."""
    try:
        config = _CONFIG.value
    except JaxdivError:
        raise
    except Exception as err:
        raise JaxdivError(f"cannot load --config: {type(err).__name__}: {err}") from None
    if config is None and required:
        raise JaxdivError("--config is required (the experiment config file)")
    return config


def _train() -> None:
    config = _config()
    if _DRY_RUN.value:
        from jaxdiv.train.dry_run import run_cli

        run_cli(
            config,
            devices=_DRY_RUN_DEVICES.value,
            members=_DRY_RUN_MEMBERS.value,
            workdir=_WORKDIR.value,
        )
        return
    from jaxdiv.distributed import initialize

    initialize(
        coordinator_address=_COORDINATOR.value,
        num_processes=_NUM_PROCESSES.value,
        process_id=_PROCESS_ID.value,
        mode=_DISTRIBUTED.value,
    )
    from jaxdiv.train.loop import train

    result = train(
        config,
        _require(_WORKDIR, "the run directory"),
        force=_FORCE.value,
        progress=_PROGRESS.value,
    )
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()})


def _predict() -> None:
    from jaxdiv.predict import predict_member
    from jaxdiv.train.workdir import load_config

    workdir = Path(_require(_WORKDIR, "the trained run's directory"))
    config = _config(required=False) or load_config(workdir)
    store = _STORE.value or str(workdir / "store")
    results = predict_member(config, workdir, store, _SPLITS.value, name=_MEMBER.value)
    for split, m in results.items():
        print(f"{split}: accuracy {m['accuracy']:.4f}  loss {m['loss']:.4f}  -> {store}")
    if not results:
        print(f"nothing to do: the member's splits are already in {store}")


def _import(files: list[str]) -> None:
    from jaxdiv.store import import_predictions

    names = import_predictions(
        _require(_STORE, "the prediction store"),
        _SPLIT.value,
        _require(_LABELS, "the labels file"),
        files,
    )
    print(
        f"imported {len(names)} member(s) into {_STORE.value} [{_SPLIT.value}]: " + ", ".join(names)
    )


def _band() -> tuple[float, float] | None:
    if not _BAND.value:
        return None
    try:
        low, high = (float(v) for v in _BAND.value)
    except ValueError:
        raise JaxdivError(
            f"--accuracy-band must be MIN,MAX (e.g. 0.7,0.8); got {_BAND.value}"
        ) from None
    return low, high


def _analyze() -> None:
    from jaxdiv.report.analyze import run_analyze

    calib = _CALIB.value
    summary = run_analyze(
        _require(_STORE, "the prediction store"),
        _SPLIT.value,
        None if calib in (None, "", "none") else calib,
        _require(_OUT, "the output directory"),
        bootstrap=_BOOTSTRAP.value,
        seed=_SEED.value,
        base=_BASE.value,
        accuracy_band=_band(),
    )
    print(f"wrote analysis of {summary.get('num_members', '?')} members to {_OUT.value}")


def _study() -> None:
    from jaxdiv.study import run_study

    result = run_study(
        _config(),
        _require(_WORKDIR, "the study directory"),
        progress=_PROGRESS.value,
        strategy=_STRATEGY.value,
    )
    if result["failed"]:
        print(f"members that failed: {', '.join(result['failed'])}", file=sys.stderr)


def _represent() -> None:
    from jaxdiv.report.represent import run_represent

    out = _require(_OUT, "the output directory")
    summary = run_represent(
        _require(_STORE, "the prediction store"),
        out,
        train_split=_TRAIN_SPLIT.value,
        eval_split=_SPLIT.value,
        base=_BASE.value,
        transfer=_TRANSFER.value,
        shots=_SHOTS.value,
        seed=_SEED.value,
        log=print,
    )
    print(f"wrote representation analysis of {len(summary['members'])} members to {out}")


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.WARNING)
    if len(argv) < 2 or argv[1] not in VERBS:
        given = argv[1] if len(argv) > 1 else None
        msg = f"unknown verb {given!r}; " if given else "no verb given; "
        raise app.UsageError(msg + f"valid verbs: {', '.join(VERBS)}")
    verb, rest = argv[1], argv[2:]
    if rest and verb != "import-predictions":
        raise app.UsageError(f"unexpected arguments {rest}; flags are written --name=value")
    try:
        if verb == "train":
            _train()
        elif verb == "predict":
            _predict()
        elif verb == "import-predictions":
            _import(rest)
        elif verb == "study":
            _study()
        elif verb == "represent":
            _represent()
        else:
            _analyze()
    except JaxdivError as err:
        print(f"jaxdiv {verb}: error: {err}", file=sys.stderr)
        sys.exit(2)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with config errors turned into one clear line."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        lines = [line for line in str(err).splitlines() if line.strip()]
        if any(line.startswith("Traceback") for line in lines):  # keep the cause, not the stack
            lines = [lines[0], lines[-1]]
        print(
            f"jaxdiv: error: {' '.join(lines)}\nPass --help for the verbs and flags.",
            file=sys.stderr,
        )
        sys.exit(2)
    except (AttributeError, KeyError) as err:  # --config.no_such_key=...
        bad = [a.split("=")[0] for a in argv if a.startswith("--config.")]
        print(
            f"jaxdiv: error: the config has no key {err} (overrides given: {', '.join(bad)}); "
            "check the spelling against the config file",
            file=sys.stderr,
        )
        sys.exit(2)
    except JaxdivError as err:
        print(f"jaxdiv: error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # a config file that fails to load
        print(
            f"jaxdiv: error: cannot load the config: {type(err).__name__}: {err}", file=sys.stderr
        )
        sys.exit(2)


def run() -> None:
    """Console entry point (``jaxdiv`` and ``python -m jaxdiv``)."""
    app.run(main, flags_parser=_parse_flags)
