"""The paper's population at ImageNet scale: 16 members around a supervised ResNet-50 with
RandAugment, covering all five categories of training difference.

Run the whole study (trains every member, predicts minival and the official validation set,
analyses, reports; re-running continues where it stopped), on an accelerator cluster:
    python -m jaxdiv study --config=configs/imagenet/population.py --workdir=runs/imagenet
Check every member compiles on a laptop (no data):
    python -m pytest tests/test_dry_run.py -m slow

Members (configs/imagenet/<family>.py[:variant] holds each full recipe and its expectation):
    base             resnet50.py                      supervised ResNet-50 + RandAugment 2/9
    Reinit           seed1, seed2                     resnet50.py:seed1, :seed2
    Hyperparameters  lr0.8, lr0.2, wd5e-5, smooth0.1, ra3-10, noaug   (resnet50.py variants)
    Architecture     vit_s16, mixer_s16, densenet121  (their own files)
    Framework        simclr_resnet50, byol_resnet50   (self-supervised + offline linear probe)
    Dataset          half_a, half_b                   the base recipe on disjoint halves of the
                                                      training images (resnet50.py variants)

The paper's Dataset category compares models pre-trained on other data (JFT, WIT); with
TFDS ImageNet alone, disjoint halves are the closest stand-in (as in configs/quickstart.py).

Expected run time and cost: 49 EFLOP in all, about 190 TPU v4 chip-hours or 170 A100-hours
(docs/scaling.md: the dry run's FLOP counts under stated utilisation assumptions; GPUs are
likely input-bound); the population was not trained here. Expected result, from
the paper: error inconsistency with the base rising Reinit < Hyperparameters < Architecture
< Framework, and ensembles with the Framework members gaining most.
"""

import sys
from pathlib import Path

import ml_collections

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from configs.imagenet import (  # noqa: E402
    byol_resnet50,
    densenet121,
    mixer_s16,
    resnet50,
    simclr_resnet50,
    vit_s16,
)
from configs.imagenet.common import MINIVAL_SPLIT, TEST_SPLIT  # noqa: E402

# (member name, category, config builder)
MEMBERS = (
    ("base", None, lambda: resnet50.get_config()),
    ("seed1", "Reinit", lambda: resnet50.get_config("seed1")),
    ("seed2", "Reinit", lambda: resnet50.get_config("seed2")),
    ("lr0.8", "Hyperparameters", lambda: resnet50.get_config("lr0.8")),
    ("lr0.2", "Hyperparameters", lambda: resnet50.get_config("lr0.2")),
    ("wd5e-5", "Hyperparameters", lambda: resnet50.get_config("wd5e-5")),
    ("smooth0.1", "Hyperparameters", lambda: resnet50.get_config("smooth0.1")),
    ("ra3-10", "Hyperparameters", lambda: resnet50.get_config("ra3-10")),
    ("noaug", "Hyperparameters", lambda: resnet50.get_config("noaug")),
    ("vit_s16", "Architecture", vit_s16.get_config),
    ("mixer_s16", "Architecture", mixer_s16.get_config),
    ("densenet121", "Architecture", densenet121.get_config),
    ("simclr_resnet50", "Framework", simclr_resnet50.get_config),
    ("byol_resnet50", "Framework", byol_resnet50.get_config),
    ("half_a", "Dataset", lambda: resnet50.get_config("half_a")),
    ("half_b", "Dataset", lambda: resnet50.get_config("half_b")),
)


def member_config(name: str) -> ml_collections.ConfigDict:
    """The full training config of one member."""
    for member, _, build in MEMBERS:
        if member == name:
            c = build()
            c.name = name
            return c
    raise ValueError(f"unknown member {name!r}; members: {', '.join(m for m, _, _ in MEMBERS)}")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def overrides(base: ml_collections.ConfigDict, other: ml_collections.ConfigDict) -> dict:
    """Dotted-key overrides turning ``base`` into ``other``; a top-level section that gains
    or loses keys (a new method's options, SSL views) is replaced whole."""
    a, b = base.to_dict(), other.to_dict()
    out = {}
    for key in b:
        if key == "name" or a.get(key) == b[key]:
            continue
        if (
            isinstance(b[key], dict)
            and isinstance(a.get(key), dict)
            and (set(_flat(a[key])) == set(_flat(b[key])))
        ):
            fa, fb = _flat(a[key]), _flat(b[key])
            out.update({f"{key}.{k}": v for k, v in fb.items() if fa[k] != v})
        else:
            out[key] = b[key]
    return out


def get_config() -> ml_collections.ConfigDict:
    pop = ml_collections.ConfigDict()
    pop.name = "imagenet"
    pop.seed = 0
    pop.base = member_config("base")
    pop.splits = [MINIVAL_SPLIT, TEST_SPLIT]
    pop.analysis = ml_collections.ConfigDict(
        {"split": TEST_SPLIT, "calibration_split": MINIVAL_SPLIT, "bootstrap": 1000}
    )
    pop.report = True
    pop.variations = [
        {"name": name, "category": category, "overrides": overrides(pop.base, member_config(name))}
        for name, category, _ in MEMBERS[1:]
    ]
    return pop
