"""A population: a base member and its variations, expanded into full member configs.

A population config holds ``base`` (a complete training config) and ``variations``, each a
dict with ``overrides`` (dotted config keys -> values) and optionally ``name`` and
``category``. A variation may also give a list of values for one key under ``sweep``
(``{"sweep": {"seed": [1, 2, 3]}}``) to make one member per value.

Each member's category relative to the base is derived from how its config differs:

    seed only                               -> Reinit
    optimiser, schedule, regularisation...  -> Hyperparameters
    model.name or the model's shape          -> Architecture
    method.name (training objective),
    finetune_from (pre-trained backbone)    -> Framework
    data.dataset / data.train_split          -> Dataset

the largest kind of difference wins (categories are nested, as in the paper), and a
variation's explicit ``category`` overrides it.

Every member is an independent training run, as in the paper: with ``independent_seeds``
(the default) a variation that does not set ``seed`` itself gets a seed no other member uses,
so a Hyperparameters or Dataset member does not share the base's initialisation and data
order (which would make it look more like the base than a re-initialisation does).
``independent_seeds=False`` keeps the base's seed for controlled one-factor comparisons.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from typing import Any

import ml_collections

from jaxdiv.errors import JaxdivError, choices_error
from jaxdiv.train.names import validate_names
from jaxdiv.train.workdir import RUNTIME_KEYS

CATEGORIES = ("Reinit", "Hyperparameters", "Architecture", "Framework", "Dataset")

# Dotted-key prefixes and the category a difference there implies (first match wins).
_KEY_CATEGORIES = (
    ("seed", "Reinit"),
    ("data.dataset", "Dataset"),
    ("data.train_split", "Dataset"),
    ("method.name", "Framework"),
    ("finetune_from", "Framework"),
    ("model.name", "Architecture"),
    ("model.kwargs.dropout", "Hyperparameters"),
    ("model.kwargs", "Architecture"),
)
# Keys that never make a member different (how it runs, not what it computes).
_IGNORED = ("name", *RUNTIME_KEYS, "data.eval_split")


# Sub-configs a supervised base need not have but a variation may add (e.g. the two-view
# augmentation and the probe of a self-supervised member).
_OPTIONAL_SUBCONFIGS = ("data.views", "data.view1", "data.view2", "probe")


@dataclasses.dataclass(frozen=True)
class Member:
    """One member: its readable name, full config and category relative to the base."""

    name: str
    config: ml_collections.ConfigDict
    category: str | None  # None for the base itself
    differences: tuple[str, ...]

    @property
    def is_base(self) -> bool:
        return self.category is None


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def _as_dict(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json_best_effort())


def config_differences(base: ml_collections.ConfigDict, other: ml_collections.ConfigDict):
    """Dotted keys whose values differ between two configs (run-only keys ignored)."""
    a, b = _flatten(_as_dict(base)), _flatten(_as_dict(other))
    keys = sorted(set(a) | set(b))
    return tuple(
        k
        for k in keys
        if a.get(k) != b.get(k) and not any(k == p or k.startswith(p + ".") for p in _IGNORED)
    )


def category_of(differences: tuple[str, ...]) -> str:
    """The largest kind of difference (see the module docstring)."""
    rank = 0
    for key in differences:
        cat = "Hyperparameters"
        for prefix, c in _KEY_CATEGORIES:
            if key == prefix or key.startswith(prefix + "."):
                cat = c
                break
        rank = max(rank, CATEGORIES.index(cat))
    return CATEGORIES[rank]


def _set(config: ml_collections.ConfigDict, key: str, value: Any, member: str) -> None:
    node = config
    *parents, leaf = key.split(".")
    path = []
    for p in parents:
        path.append(p)
        if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
            raise JaxdivError(
                f"member {member!r}: config key {'.'.join(path)!r} does not exist "
                f"(override {key!r}); valid keys here: {', '.join(sorted(node.keys()))}"
            )
        node = node[p]
    optional = key in _OPTIONAL_SUBCONFIGS or (parents and parents[-1] == "kwargs")
    if leaf not in node and not optional:
        raise JaxdivError(
            f"member {member!r}: config key {key!r} does not exist; valid keys here: "
            f"{', '.join(sorted(node.keys()))}"
        )
    if isinstance(value, dict):
        value = ml_collections.ConfigDict(value)
    with node.unlocked():
        node[leaf] = value


def _slug(value: Any) -> str:
    text = str(value)
    return re.sub(r"[^A-Za-z0-9_.+=-]+", "_", text).strip("_") or "x"


def _auto_name(overrides: dict[str, Any]) -> str:
    """``{"model.name": "cnn"}`` -> ``cnn``; ``{"seed": 1}`` -> ``seed1`` (dicts by key)."""
    parts = []
    for key, value in overrides.items():
        leaf = key.split(".")[-1]
        if isinstance(value, dict | ml_collections.ConfigDict):
            continue
        parts.append(_slug(value) if leaf == "name" else f"{leaf}{_slug(value)}")
    return "-".join(parts) or "-".join(k.split(".")[-1] for k in overrides)


def _fresh_seeds(pop: ml_collections.ConfigDict, base: ml_collections.ConfigDict):
    """Seeds 0, 1, 2, ... skipping the base's and every seed a variation sets explicitly."""
    used = {int(base.seed)}
    for var in pop.variations:
        var = dict(var)
        for seeds in (
            (dict(var.get("overrides") or {}).get("seed"),),
            dict(var.get("sweep") or {}).get("seed") or (),
        ):
            used.update(int(x) for x in seeds if x is not None)
    seed = 0
    while True:
        if seed not in used:
            yield seed
        seed += 1


def expand_population(pop: ml_collections.ConfigDict) -> list[Member]:
    """The base followed by every variation, validated (clear errors before training)."""
    if "base" not in pop or "variations" not in pop:
        raise JaxdivError("a population config needs `base` (a training config) and `variations`")
    base_cfg = copy.deepcopy(pop.base)
    base_name = str(pop.get("base_name", base_cfg.get("name", "base")))
    with base_cfg.unlocked():
        base_cfg.name = base_name
    validate_names(base_cfg)
    members = [Member(base_name, base_cfg, None, ())]
    independent = bool(pop.get("independent_seeds", True))
    fresh_seeds = _fresh_seeds(pop, base_cfg) if independent else iter(())
    for i, var in enumerate(pop.variations):
        var = dict(var)
        unknown = set(var) - {"name", "overrides", "category", "sweep"}
        if unknown:
            raise JaxdivError(
                f"variation {i}: unknown field(s) {sorted(unknown)}; valid fields: "
                "name, overrides, category, sweep"
            )
        overrides = dict(var.get("overrides", {}) or {})
        sweep = dict(var.get("sweep", {}) or {})
        if len(sweep) > 1:
            raise JaxdivError(f"variation {i}: sweep one key at a time; got {sorted(sweep)}")
        runs = [({}, None)]
        if sweep:
            ((key, values),) = sweep.items()
            runs = [({key: v}, v) for v in values]
        for extra, value in runs:
            over = {**overrides, **extra}
            name = var.get("name") or _auto_name(over)
            if var.get("name") and sweep:
                name = f"{var['name']}{_slug(value)}"
            if not over:
                raise JaxdivError(f"variation {name!r} has no overrides: it changes nothing")
            cfg = copy.deepcopy(base_cfg)
            for key, v in over.items():
                _set(cfg, key, v, name)
            with cfg.unlocked():
                cfg.name = name
            validate_names(cfg)
            diffs = config_differences(base_cfg, cfg)
            if not diffs:
                raise JaxdivError(
                    f"variation {name!r} changes nothing relative to the base "
                    f"(overrides {over}); remove it or change a value"
                )
            if independent and "seed" not in over:
                with cfg.unlocked():
                    cfg.seed = next(fresh_seeds)
                diffs = config_differences(base_cfg, cfg)
            category = var.get("category") or category_of(diffs)
            if category not in CATEGORIES:
                raise choices_error("category", category, CATEGORIES)
            members.append(Member(name, cfg, category, diffs))
    seen: dict[str, int] = {}
    for m in members:
        seen[m.name] = seen.get(m.name, 0) + 1
    dupes = sorted(n for n, k in seen.items() if k > 1)
    if dupes:
        raise JaxdivError(
            f"two or more members are named {', '.join(map(repr, dupes))}; give the "
            "variations distinct `name`s"
        )
    for m in members:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$", m.name):
            raise JaxdivError(f"member name {m.name!r} must use letters, digits and _ . + = -")
    return members
