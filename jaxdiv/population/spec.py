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

``pretrain`` lists pre-training runs that are trained but never predicted or analysed, each a
dict with ``name`` and ``overrides`` of the base (e.g. supervised on procedural pseudo-classes).
A variation fine-tunes from one with ``finetune_from="pretrain:<name>"``; the study trains
the run in ``WORKDIR/pretrain/<name>`` first (``resolve_pretrained`` turns the reference
into that path). A member fine-tuned from a run on other data than the base's
(``data.dataset``/``data.train_split``) is a Dataset member: the paper's models pre-trained
on other data and then fine-tuned on the task.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path
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


def _category(cfg, diffs, base_cfg, pretrain: dict, member: str) -> str:
    """``category_of`` the differences; Dataset for a fine-tune from a pre-training run on
    other data than the base's."""
    category = category_of(diffs)
    source = pretrain_source(cfg)
    if source is None:
        return category
    if source not in pretrain:
        raise JaxdivError(
            f"member {member!r}: finetune_from={cfg.finetune_from!r} names no pretrain entry; "
            f"defined: {', '.join(sorted(pretrain)) or 'none (add `pretrain` to the population)'}"
        )
    other_data = any(pretrain[source].data.get(k) != base_cfg.data.get(k) for k in _DATA_KEYS)
    return "Dataset" if other_data else category


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


@dataclasses.dataclass(frozen=True)
class PretrainRun:
    """A pre-training run of the population: trained in ``WORKDIR/pretrain/<name>``, never
    predicted; members reach it through ``finetune_from="pretrain:<name>"``."""

    name: str
    config: ml_collections.ConfigDict


PRETRAIN_PREFIX = "pretrain:"
_DATA_KEYS = ("dataset", "train_split")


def _fresh_seeds(pop: ml_collections.ConfigDict, base: ml_collections.ConfigDict):
    """Seeds 0, 1, 2, ... skipping the base's and every seed a variation or pre-training run
    sets explicitly."""
    used = {int(base.seed)}
    for var in [*pop.variations, *(pop.get("pretrain") or ())]:
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


def _pretrain_configs(
    pop: ml_collections.ConfigDict, base_cfg: ml_collections.ConfigDict
) -> dict[str, ml_collections.ConfigDict]:
    """``pop.pretrain``'s runs: name -> config (the base with the run's overrides)."""
    runs: dict[str, ml_collections.ConfigDict] = {}
    for i, entry in enumerate(pop.get("pretrain") or ()):
        entry = dict(entry)
        unknown = set(entry) - {"name", "overrides"}
        name = entry.get("name")
        if unknown or not name or not entry.get("overrides"):
            raise JaxdivError(
                f"pretrain entry {i}: give `name` and `overrides` (of the base) and nothing "
                f"else; got fields {sorted(entry)}"
            )
        if name in runs:
            raise JaxdivError(f"two pretrain entries are named {name!r}; give them distinct names")
        cfg = copy.deepcopy(base_cfg)
        for key, v in dict(entry["overrides"]).items():
            _set(cfg, key, v, f"pretrain:{name}")
        with cfg.unlocked():
            cfg.name = name
        validate_names(cfg)
        if str(cfg.get("finetune_from") or "").startswith(PRETRAIN_PREFIX):
            raise JaxdivError(f"pretrain {name!r}: a pre-training run cannot fine-tune from one")
        runs[name] = cfg
    return runs


def expand_pretraining(pop: ml_collections.ConfigDict) -> list[PretrainRun]:
    """``pop.pretrain``'s runs, each with a seed no member or other run uses (unless its
    overrides set one, or ``independent_seeds`` is False)."""
    members = expand_population(pop)
    runs = _pretrain_configs(pop, members[0].config)
    if not runs:
        return []
    used = {int(m.config.seed) for m in members}
    out, seed = [], 0
    for entry in pop.pretrain:
        cfg = runs[dict(entry)["name"]]
        sets_seed = "seed" in dict(dict(entry)["overrides"])
        if bool(pop.get("independent_seeds", True)) and not sets_seed:
            while seed in used:
                seed += 1
            with cfg.unlocked():
                cfg.seed = seed
        used.add(int(cfg.seed))
        out.append(PretrainRun(cfg.name, cfg))
    return out


def pretrain_source(config: ml_collections.ConfigDict) -> str | None:
    """The pre-training run a member's ``finetune_from="pretrain:<name>"`` names, else None."""
    source = str(config.get("finetune_from") or "")
    return source[len(PRETRAIN_PREFIX) :] if source.startswith(PRETRAIN_PREFIX) else None


def pretrain_dir(workdir: Any, name: str) -> str:
    return str(Path(workdir) / "pretrain" / name)


def resolve_pretrained(members: list[Member], workdir: Any) -> list[Member]:
    """Members with ``finetune_from="pretrain:<name>"`` pointed at ``WORKDIR/pretrain/<name>``."""
    out = []
    for m in members:
        name = pretrain_source(m.config)
        if name is not None:
            cfg = copy.deepcopy(m.config)
            with cfg.unlocked():
                cfg.finetune_from = pretrain_dir(workdir, name)
            m = dataclasses.replace(m, config=cfg)
        out.append(m)
    return out


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
    pretrain = _pretrain_configs(pop, base_cfg)
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
            category = var.get("category") or _category(cfg, diffs, base_cfg, pretrain, name)
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
