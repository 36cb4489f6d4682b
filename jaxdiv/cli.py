"""jaxdiv's command line: ``jaxdiv VERB [flags]`` (or ``python -m jaxdiv VERB [flags]``).

Every verb is one row of ``VERBS``: the ``module:function`` it runs (imported only when the
verb runs), its help line, its usage and the flags it takes. ``jaxdiv --help`` lists the verbs,
``jaxdiv VERB --help`` that verb's flags. Flags are spelled with underscores, as absl defines
them; the older dashed spellings in ``DASHED`` are rewritten before parsing, with a one-line
deprecation notice on stderr.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from absl import app, flags, logging
from ml_collections import config_flags

from jaxdiv.errors import JaxdivError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:variant].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, store).")
_FORCE = flags.DEFINE_bool(
    "force",
    False,
    "Move results made from another config aside (train: the run and WORKDIR/store, to "
    "WORKDIR/superseded/; predict: the member's store entries; study: both, per changed "
    "member) and start afresh.",
)
_STORE = flags.DEFINE_string("store", None, "Prediction store directory.")
_SPLITS = flags.DEFINE_list("splits", ["validation", "test"], "Splits to predict.")
_SPLIT = flags.DEFINE_string(
    "split",
    "test",
    "Store split: imported into (import-predictions), analysed (analyze), probes scored on "
    "(represent); the TFDS split evaluated (evaluate).",
)
_MEMBER = flags.DEFINE_string("member", None, "Member name in the store (default config.name).")
_LABELS = flags.DEFINE_string(
    "labels", None, "labels.npz with `ids` and `labels` (.npz members of a new split)."
)
_CLASSES = flags.DEFINE_string(
    "classes", None, "Text file of class names, one per line in class-index order."
)
_MANIFEST = flags.DEFINE_string(
    "manifest",
    None,
    "members.csv: a `file` or `member` column, then name, category, method, architecture, "
    "human (true/false); other columns kept as metadata.",
)
_HUMAN = flags.DEFINE_bool("human", False, "Mark every imported member as a human subject.")
_CALIB = flags.DEFINE_string(
    "calibration_split", "validation", "Split to fit temperatures on, or `none`."
)
_OUT = flags.DEFINE_string("out", None, "Output directory for the analysis files.")
_BOOTSTRAP = flags.DEFINE_integer("bootstrap", 0, "Bootstrap resamples for intervals (0: off).")
_SEED = flags.DEFINE_integer(
    "seed", 0, "Seed for bootstrap resampling (analyze) or probe subsets (represent)."
)
_BASE = flags.DEFINE_string("base", None, "Base member for per-category aggregates.")
_BAND = flags.DEFINE_list(
    "accuracy_band", None, "MIN,MAX: keep only base pairs whose other member's accuracy lies in it."
)
_SHIFT_SPLITS = flags.DEFINE_list(
    "shift_splits",
    None,
    "Corrupted splits of --split analysed in the same pass with the clean temperatures "
    "(e.g. test:gaussian_noise:3,test:fog:3), or 'all' for every one in the store.",
)
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")
_TRAIN_SPLIT = flags.DEFINE_string(
    "train_split", "validation", "Split the probes are fitted on (--split: scored on)."
)
_TRANSFER = flags.DEFINE_string(
    "transfer", "fewshot", "Stacked-generalisation task (fewshot, coarse or none)."
)
_SHOTS = flags.DEFINE_integer("shots", 10, "Labelled examples per class (--transfer).")
_DRY_RUN = flags.DEFINE_bool(
    "dry_run",
    False,
    "Compile the train step for a simulated mesh of --dry_run_devices CPU devices and print "
    "its cost; reads no data, needs no --workdir.",
)
_DRY_RUN_DEVICES = flags.DEFINE_integer("dry_run_devices", 8, "Simulated devices (--dry_run).")
_DRY_RUN_MEMBERS = flags.DEFINE_integer(
    "dry_run_members", 1, "Stacked members to compile as one vmapped step (--dry_run)."
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    None,
    "Train across processes: host:port of process 0 (else "
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
    "How the members are trained: one after another, or seed cohorts stacked with vmap "
    "(auto: sequential on CPU, vmap on GPU/TPU).",
)
_ADAPTER = flags.DEFINE_string(
    "adapter",
    None,
    "Outside model KIND:MODEL, KIND one of timm, torchvision, transformers, flax "
    "(jaxdiv/third_party/README.md).",
)
_WEIGHTS = flags.DEFINE_string(
    "weights",
    None,
    "Local weights file or folder of --adapter (default: the model's weights in your cache; "
    "`random`: random initialisation). Nothing is downloaded.",
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per forward pass (evaluate).")
_DATASET = flags.DEFINE_string("dataset", "cifar10", "TFDS dataset of --split (evaluate).")

DASHED = {
    "calibration-split": "calibration_split",
    "train-split": "train_split",
    "accuracy-band": "accuracy_band",
}
"""Deprecated dashed flag spellings -> the flag they stand for."""

ACCEPTED_BY_EVERY_VERB = ("progress",)
"""Flags any verb accepts (``launch/slurm.sbatch`` appends ``--noprogress`` to every verb)."""

HELP_ARGS = ("-h", "--help", "-help", "-?", "--helpshort", "-helpshort")
OVERRIDE_HINT = (
    "Config keys are overridden on the command line, e.g. --config.optimizer.learning_rate=0.05."
)


# ------------------------------------------------------------------------------ the verbs
def _lazy(target: str) -> Callable[..., Any]:
    """``module:function``, imported when first called."""
    module, name = target.split(":")

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = target
    return call


def _require(flag, what: str):
    if flag.value is None:
        raise JaxdivError(f"--{flag.name} is required ({what})")
    return flag.value


def _config(required: bool = True):
    """The loaded config (a config file's errors become one clear line)."""
    try:
        config = _CONFIG.value
    except JaxdivError:
        raise
    except Exception as err:
        raise JaxdivError(f"cannot load --config: {type(err).__name__}: {err}") from None
    if config is None and required:
        raise JaxdivError("--config is required (the experiment config file)")
    return config


def _train(train: Callable, files: list[str]) -> None:
    config = _config()
    from jaxdiv.distributed import initialize

    initialize(
        coordinator_address=_COORDINATOR.value,
        num_processes=_NUM_PROCESSES.value,
        process_id=_PROCESS_ID.value,
        mode=_DISTRIBUTED.value,
    )
    result = train(
        config,
        _require(_WORKDIR, "the run directory"),
        force=_FORCE.value,
        progress=_PROGRESS.value,
    )
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()})


def _dry_run(run_cli: Callable, files: list[str]) -> None:
    run_cli(
        _config(),
        devices=_DRY_RUN_DEVICES.value,
        members=_DRY_RUN_MEMBERS.value,
        workdir=_WORKDIR.value,
    )


def _predict(predict_member: Callable, files: list[str]) -> None:
    from jaxdiv.store.store import Store
    from jaxdiv.train.workdir import check_workdir, load_config

    workdir = Path(_require(_WORKDIR, "the trained run's directory"))
    check_workdir(workdir)
    store = _STORE.value or str(workdir / "store")
    if _MEMBER.value is not None:
        Store(store).member_dir(_MEMBER.value)  # checks the name; creates nothing
    config = _config(required=False)
    if config is None:
        config = load_config(workdir)
    results = predict_member(
        config, workdir, store, _SPLITS.value, name=_MEMBER.value, overwrite=_FORCE.value
    )
    for split, m in results.items():
        print(f"{split}: accuracy {m['accuracy']:.4f}  loss {m['loss']:.4f}  -> {store}")
    if not results:
        print(f"nothing to do: the member's splits are already in {store}")


def _import(import_predictions: Callable, files: list[str]) -> None:
    names = import_predictions(
        _require(_STORE, "the prediction store"),
        _SPLIT.value,
        _LABELS.value,
        files,
        classes=_CLASSES.value,
        manifest=_MANIFEST.value,
        human=_HUMAN.value,
    )
    print(
        f"imported {len(names)} member(s) into {_STORE.value} [{_SPLIT.value}]: " + ", ".join(names)
    )


def _evaluate(evaluate: Callable, files: list[str]) -> None:
    result = evaluate(
        _require(_ADAPTER, "the outside model, KIND:MODEL"),
        _SPLIT.value,
        _require(_STORE, "the prediction store"),
        weights=_WEIGHTS.value,
        name=_MEMBER.value,
        batch_size=_BATCH_SIZE.value,
        dataset=_DATASET.value,
        progress=_PROGRESS.value,
    )
    print(
        f"{result['name']} [{result['split']}]: accuracy {result['accuracy']:.4f} on "
        f"{result['examples']} examples -> {_STORE.value}"
    )


def _band() -> tuple[float, float] | None:
    if not _BAND.value:
        return None
    try:
        low, high = (float(v) for v in _BAND.value)
    except ValueError:
        raise JaxdivError(
            f"--accuracy_band must be MIN,MAX (e.g. 0.7,0.8); got {','.join(_BAND.value)}"
        ) from None
    return low, high


def _analyze(run_analyze: Callable, files: list[str]) -> None:
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
        shift_splits=_SHIFT_SPLITS.value,
    )
    print(f"wrote analysis of {summary.get('num_members', '?')} members to {_OUT.value}")


def _study(run_study: Callable, files: list[str]) -> None:
    result = run_study(
        _config(),
        _require(_WORKDIR, "the study directory"),
        progress=_PROGRESS.value,
        strategy=_STRATEGY.value,
        force=_FORCE.value,
    )
    if result["failed"]:
        print(f"members that failed: {', '.join(result['failed'])}", file=sys.stderr)
        sys.exit(1)


def _represent(run_represent: Callable, files: list[str]) -> None:
    out = _require(_OUT, "the output directory")
    summary = run_represent(
        _require(_STORE, "the prediction store"),
        out,
        train_split=_TRAIN_SPLIT.value,
        eval_split=_SPLIT.value,
        base=_BASE.value,
        transfer=_TRANSFER.value,
        shots=_SHOTS.value,
        bootstrap=_BOOTSTRAP.value,
        seed=_SEED.value,
        log=print,
    )
    print(f"wrote representation analysis of {len(summary['members'])} members to {out}")


def _report(run_report: Callable, files: list[str]) -> None:
    calib = _CALIB.value if flags.FLAGS["calibration_split"].present else None
    run_report(
        _require(_STORE, "the prediction store"),
        _require(_OUT, "the output directory"),
        split=_SPLIT.value,
        calibration_split=None if calib in (None, "", "none") else calib,
        base=_BASE.value,
        manifest=_MANIFEST.value,
        bootstrap=_BOOTSTRAP.value,
        seed=_SEED.value,
        shift_splits=_SHIFT_SPLITS.value,
    )


@dataclasses.dataclass(frozen=True)
class Verb:
    """One verb: ``call(function, files)`` runs ``target`` (``module:function``, imported only
    when the verb runs) with the values of ``flags``, the flags the verb takes."""

    target: str
    call: Callable[[Callable, list[str]], None]
    help: str
    usage: str
    flags: tuple[str, ...]
    takes_files: bool = False
    switch: tuple[str, str, Callable[[Callable, list[str]], None]] | None = None
    """(boolean flag, target, call) run instead of ``target`` when that flag is set."""

    def run(self, files: list[str]) -> None:
        target, call = self.target, self.call
        if self.switch and flags.FLAGS[self.switch[0]].value:
            _, target, call = self.switch
        call(_lazy(target), files)


VERBS: dict[str, Verb] = {
    "train": Verb(
        "jaxdiv.train.loop:train",
        _train,
        "train (or resume) one model",
        "--config=configs/x.py[:variant] --workdir=DIR [--force] "
        "[--dry_run: compile only, for a simulated 8-device mesh; no data read] "
        "(multi-process: launch/README.md)",
        (
            "config",
            "workdir",
            "force",
            "progress",
            "dry_run",
            "dry_run_devices",
            "dry_run_members",
            "coordinator_address",
            "num_processes",
            "process_id",
            "distributed",
        ),
        switch=("dry_run", "jaxdiv.train.dry_run:run_cli", _dry_run),
    ),
    "predict": Verb(
        "jaxdiv.store.predict:predict_member",
        _predict,
        "write a trained model's logits and embeddings into a prediction store",
        "--workdir=DIR [--config=...] [--store=DIR (default WORKDIR/store)] "
        "[--splits=validation,test] [--member=NAME] [--force]",
        ("config", "workdir", "store", "splits", "member", "force"),
    ),
    "import-predictions": Verb(
        "jaxdiv.store.importer:import_predictions",
        _import,
        "add models trained elsewhere (or human subjects) to a prediction store",
        "--store=DIR --split=NAME [--labels=labels.npz] a.npz b.npz ... | trials.csv "
        "(model-vs-human raw data or member,example_id,response,label) "
        "[--classes=FILE] [--manifest=members.csv] [--human]",
        ("store", "split", "labels", "classes", "manifest", "human"),
        takes_files=True,
    ),
    "evaluate": Verb(
        "jaxdiv.third_party.evaluate:evaluate",
        _evaluate,
        "evaluate an outside model (timm, torchvision, Hugging Face transformers, a flax "
        "checkpoint) on a TFDS split into a prediction store: logits and penultimate embeddings",
        "--adapter=timm:resnet18 --split=test --store=DIR [--weights=FILE|random] "
        "[--member=NAME] [--batch_size=64] [--dataset=cifar10]",
        ("adapter", "split", "store", "weights", "member", "batch_size", "dataset"),
    ),
    "analyze": Verb(
        "jaxdiv.stages.analyze:run_analyze",
        _analyze,
        "all-pairs error statistics, ensembles and calibration of a store",
        "--store=DIR --split=test --calibration_split=validation|none --out=DIR "
        "[--bootstrap=K] [--base=NAME] [--accuracy_band=MIN,MAX] "
        "[--shift_splits=test:fog:3,...|all]",
        (
            "store",
            "split",
            "calibration_split",
            "out",
            "bootstrap",
            "seed",
            "base",
            "accuracy_band",
            "shift_splits",
        ),
    ),
    "study": Verb(
        "jaxdiv.stages.study:run_study",
        _study,
        "the whole population study end to end (train every member, predict, analyse, "
        "report); re-running continues where it stopped",
        "--config=configs/quickstart.py --workdir=DIR [--strategy=auto|sequential|vmap] [--force]",
        ("config", "workdir", "progress", "strategy", "force"),
    ),
    "represent": Verb(
        "jaxdiv.stages.represent:run_represent",
        _represent,
        "linear probes on the members' embeddings (random-subset mixing, compression, "
        "stacked generalisation) and linear CKA",
        "--store=DIR --out=DIR [--train_split=validation --split=test] [--base=NAME] "
        "[--transfer=fewshot|coarse|none --shots=10] [--bootstrap=K] [--seed=0]",
        ("store", "out", "train_split", "split", "base", "transfer", "shots", "bootstrap", "seed"),
    ),
    "report": Verb(
        "jaxdiv.stages.report_store:run_report",
        _report,
        "the analysis and HTML report of any store (imported members, hard decisions, human "
        "subjects)",
        "--store=DIR --out=DIR [--split=test] [--calibration_split=NAME (default none)] "
        "[--base=NAME] [--manifest=members.csv] [--bootstrap=K] [--seed=0] "
        "[--shift_splits=test:fog:3,...|all]",
        (
            "store",
            "out",
            "split",
            "calibration_split",
            "base",
            "manifest",
            "bootstrap",
            "seed",
            "shift_splits",
        ),
    ),
}


# ------------------------------------------------------------------------------ help
def _wrap(text: str, indent: int, first: str | None = None) -> str:
    """``text`` wrapped at 100 columns, continuation lines indented by ``indent``."""
    return textwrap.fill(
        text,
        width=100,
        initial_indent=" " * indent if first is None else first,
        subsequent_indent=" " * indent,
        break_on_hyphens=False,
    )


def usage() -> str:
    """``jaxdiv --help``: the verbs, each with its help line and usage."""
    lines = [
        "jaxdiv: train populations of image models and measure how differently they err.",
        "",
        "usage: jaxdiv VERB [flags]  (or python -m jaxdiv VERB [flags])",
        "",
        "verbs:",
    ]
    for name, verb in VERBS.items():
        lines.append(_wrap(verb.help, 22, f"  {name}".ljust(22)))
        lines.append(_wrap(verb.usage, 22))
    lines += ["", "`jaxdiv VERB --help` lists the flags of a verb.", OVERRIDE_HINT]
    return "\n".join(lines)


def _flag_help(name: str) -> str:
    flag = flags.FLAGS[name]
    spelled = f"--[no]{name}" if flag.boolean else f"--{name}"
    text = flag.help
    if flag.default_as_str is not None and name != "config":
        text += f" (default: {flag.default_as_str})"
    return _wrap(f"{spelled}: {text}", 6, "  ")


def verb_usage(name: str) -> str:
    """``jaxdiv VERB --help``: the verb's help line, usage and only its flags."""
    verb = VERBS[name]
    lines = [
        f"jaxdiv {name}: {verb.help}",
        "",
        _wrap(f"usage: jaxdiv {name} {verb.usage}", 4, ""),
        "",
        "flags:",
    ]
    lines += [_flag_help(flag) for flag in verb.flags]
    if "config" in verb.flags:
        lines += ["", OVERRIDE_HINT]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ argv
def undash(argv: Sequence[str]) -> list[str]:
    """``argv`` with the dashed spellings in ``DASHED`` rewritten (one stderr notice each)."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + list(argv[i:])
        match = re.fullmatch(r"--?([a-z-]+)(=.*)?", arg, flags=re.DOTALL)
        if match and match.group(1) in DASHED:
            old, new = match.group(1), DASHED[match.group(1)]
            print(f"jaxdiv: --{old} is deprecated; write --{new}", file=sys.stderr)
            arg = f"--{new}{match.group(2) or ''}"
        out.append(arg)
    return out


def _config_arg(argv: Sequence[str]) -> str | None:
    """The last ``--config`` value in ``argv`` (``--config=X`` or ``--config X``)."""
    value = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if re.fullmatch(r"--?config", arg) and i + 1 < len(argv):
            value = argv[i + 1]
        elif re.match(r"--?config=", arg):
            value = arg.split("=", 1)[1]
    return value


def config_import_root(config_file: str | Path) -> Path:
    """Where a config file's absolute imports (``from configs import ...``) resolve from: the
    folder holding its outermost package (folders with ``__init__.py``), else the current
    directory (as for ``python -m``)."""
    folder = Path(config_file).resolve().parent
    if not (folder / "__init__.py").is_file():
        return Path.cwd()
    while (folder.parent / "__init__.py").is_file() and folder.parent != folder:
        folder = folder.parent
    return folder.parent


def prepare_config_import(argv: Sequence[str]) -> None:
    """Check that ``--config``'s file exists and put its import root first on ``sys.path``
    (the ``jaxdiv`` console script, unlike ``python -m``, has no current directory on it)."""
    value = _config_arg(argv)
    if value is None:
        return
    path = value.split(":", 1)[0]
    if not Path(path).is_file():
        raise JaxdivError(
            f"no config file {path!r} (from --config={value}; relative to {os.getcwd()})"
        )
    root = str(config_import_root(path))
    if root not in sys.path:
        sys.path.insert(0, root)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, after the verb's help, dashed spellings and the config's import
    root are dealt with; config errors become one clear line."""
    argv = undash(argv)
    if any(arg in HELP_ARGS for arg in argv[1 : argv.index("--") if "--" in argv else None]):
        print(verb_usage(argv[1]) if len(argv) > 1 and argv[1] in VERBS else usage())
        sys.exit(0)
    try:
        prepare_config_import(argv)
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


def _check_flags(name: str) -> None:
    """Refuse flags that belong to other verbs (they would be ignored)."""
    taken = set(VERBS[name].flags) | set(ACCEPTED_BY_EVERY_VERB)
    known = {flag for verb in VERBS.values() for flag in verb.flags}
    foreign = sorted(f for f in known - taken if flags.FLAGS[f].present)
    if foreign:
        given = ", ".join(f"--{f}" for f in foreign)
        raise JaxdivError(
            f"{given} is not a flag of {name}; `jaxdiv {name} --help` lists its flags"
        )


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.WARNING)
    if len(argv) < 2 or argv[1] not in VERBS:
        given = argv[1] if len(argv) > 1 else None
        msg = f"unknown verb {given!r}; " if given else "no verb given; "
        print(
            f"jaxdiv: error: {msg}valid verbs: {', '.join(VERBS)}\n"
            "`jaxdiv --help` lists the verbs, `jaxdiv VERB --help` a verb's flags.",
            file=sys.stderr,
        )
        sys.exit(2)
    name, rest = argv[1], argv[2:]
    verb = VERBS[name]
    try:
        if rest and not verb.takes_files:
            raise JaxdivError(f"unexpected arguments {rest}; flags are written --name=value")
        _check_flags(name)
        verb.run(rest)
    except JaxdivError as err:
        print(f"jaxdiv {name}: error: {err}", file=sys.stderr)
        sys.exit(2)


def run() -> None:
    """Console entry point (``jaxdiv`` and ``python -m jaxdiv``)."""
    app.run(main, flags_parser=_parse_flags)
