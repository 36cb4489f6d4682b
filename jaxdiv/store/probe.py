"""The offline linear probe and kNN classifier of a representation learner (a member without
a classifier of its own), whose logits ``jaxdiv predict`` writes into the store.

The offline probe is multinomial logistic regression on standardised, frozen embeddings of
un-augmented images, fitted by ``jaxdiv.analysis.probes.fit_probes`` once per L2 strength of
``config.probe.l2_grid``; the strength with the best validation accuracy is kept (ties: the
lower validation loss). Embeddings are computed with the normalisation the member trained
with (its views' ``mean`` and ``std``, from ``config.data.views``), and every split is read
through ``jaxdiv.data.streaming.eval_split``, so streamed datasets (ImageNet) work too. The
kNN classifier votes among the fit split's embeddings (cosine similarity). Their numbers are
reported as ``offline_probe_*`` and ``knn_*`` and never mixed with the ``online_probe_*``
numbers logged during pre-training (a probe trained on augmented views while the backbone
moved).

The fitted probe is kept in ``WORKDIR/offline_probe/`` (``probe.npz``, ``probe.json``),
keyed by the checkpoint step, the probe settings, the normalisation and ``config.data``, so
predicting more splits later does not read the fit split again; kNN accuracies are computed
only for the splits predicted together with a fit (they need the fit split's embeddings).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from jaxdiv.analysis import probes
from jaxdiv.data import augment, streaming
from jaxdiv.data.datasets import ArraySplit
from jaxdiv.errors import JaxdivError
from jaxdiv.files import json_safe, staged_folder
from jaxdiv.methods.base import Method
from jaxdiv.train.evaluate import accuracy_and_loss, predict_split
from jaxdiv.train.mesh import batch_sharded, replicated

DEFAULT_L2_GRID: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
CACHE_DIR = "offline_probe"


# --- the linear probe -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LinearProbe:
    """A fitted probe: ``logits = ((x - mean) / scale) @ weights + bias``."""

    weights: np.ndarray  # [D, C]
    bias: np.ndarray  # [C]
    mean: np.ndarray  # [D]
    scale: np.ndarray  # [D]
    l2: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float32) - self.mean) / self.scale
        return (z @ self.weights + self.bias).astype(np.float32)


def fit_linear_probe(
    fit_x: np.ndarray,
    fit_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    num_classes: int,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    *,
    max_iter: int = 1000,
) -> tuple[LinearProbe, dict[float, dict[str, float]]]:
    """Fit one probe per L2 strength on ``fit`` and keep the best validation accuracy (ties:
    lower validation loss). Each probe minimises ``mean CE + l2 / 2 * ||W||^2`` (bias
    unpenalised) on features standardised with the fit split's mean and std, i.e.
    scikit-learn's ``LogisticRegression(C=1 / (l2 * N))``. Returns the chosen probe and, per
    strength, its validation accuracy, loss and whether the solver converged."""
    if len(fit_x) == 0 or len(val_x) == 0:
        raise JaxdivError("the linear probe needs non-empty fit and validation splits")
    if fit_x.shape[1] != val_x.shape[1]:
        raise JaxdivError(
            f"fit and validation embeddings differ in width: {fit_x.shape[1]} vs {val_x.shape[1]}"
        )
    if not l2_grid or any(not float(v) > 0 for v in l2_grid):
        raise JaxdivError(f"l2_grid must be a non-empty list of strengths > 0, got {l2_grid}")
    mean, std = (a[0].astype(np.float32) for a in probes.standardisation(fit_x))
    (z,) = probes.standardise(fit_x)
    val_y = np.asarray(val_y)
    best: tuple[tuple[float, float], LinearProbe] | None = None
    grid: dict[float, dict[str, float]] = {}
    for l2 in sorted(float(v) for v in l2_grid):
        fit = probes.fit_probes(
            z, fit_y, c=1.0 / (l2 * len(z)), num_classes=num_classes, max_iter=max_iter
        )
        probe = LinearProbe(fit.weights[0, 0], fit.bias[0, 0], mean, std, l2)
        scores = accuracy_and_loss(probe.logits(val_x), val_y)
        grid[l2] = {**scores, "converged": bool(fit.converged[0, 0])}
        if best is None or (scores["accuracy"], -scores["loss"]) > best[0]:
            best = ((scores["accuracy"], -scores["loss"]), probe)
    return best[1], grid


# --- kNN ------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _knn_scores(train, train_y, query, k, num_classes, temperature):
    sims = query @ train.T  # cosine: rows are unit vectors
    top, idx = jax.lax.top_k(sims, k)
    votes = jax.nn.one_hot(train_y[idx], num_classes)  # [Q, k, C]
    weights = jnp.where(temperature > 0, jnp.exp(top / jnp.maximum(temperature, 1e-12)), 1.0)
    return jnp.einsum("qk,qkc->qc", weights, votes)


def knn_scores(
    train_x: np.ndarray,
    train_y: np.ndarray,
    query_x: np.ndarray,
    num_classes: int,
    *,
    k: int = 20,
    temperature: float | None = 0.07,
    chunk: int = 512,
) -> np.ndarray:
    """Class scores [Q, C] of a cosine-similarity kNN: the ``k`` nearest training examples
    vote with weight ``exp(cos / temperature)`` (Wu et al. 2018), or 1 when
    ``temperature`` is None (plain majority vote)."""
    if not 1 <= k <= len(train_x):
        raise JaxdivError(f"kNN needs 1 <= k <= {len(train_x)} training examples, got k={k}")

    def unit(a):
        a = np.asarray(a, np.float32)
        return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)

    train = jnp.asarray(unit(train_x))
    labels = jnp.asarray(train_y, jnp.int32)
    query = unit(query_x)
    temp = jnp.float32(0.0 if temperature is None else temperature)
    out = []
    for start in range(0, len(query), chunk):
        q = query[start : start + chunk]
        pad = chunk - len(q)
        q = np.concatenate([q, np.zeros((pad, q.shape[1]), np.float32)]) if pad else q
        out.append(
            np.asarray(_knn_scores(train, labels, jnp.asarray(q), k, num_classes, temp))[
                : chunk - pad
            ]
        )
    return np.concatenate(out) if out else np.zeros((0, num_classes), np.float32)


def knn_accuracy(train_x, train_y, query_x, query_y, num_classes: int, **kw) -> float:
    scores = knn_scores(train_x, train_y, query_x, num_classes, **kw)
    return float((scores.argmax(-1) == np.asarray(query_y)).mean())


# --- embeddings of a trained member -----------------------------------------------------------


def probe_settings(config: ml_collections.ConfigDict) -> dict:
    """``config.probe`` with defaults: fit/val splits, L2 grid, kNN k and temperature."""
    p = dict(config.get("probe", None) or {})
    valid = {"fit_split", "val_split", "l2_grid", "knn_k", "knn_temperature", "max_iter"}
    unknown = sorted(set(p) - valid)
    if unknown:
        raise JaxdivError(
            f"unknown probe option(s) {', '.join(unknown)}; valid options: "
            f"{', '.join(sorted(valid))}"
        )
    return {
        "fit_split": p.get("fit_split") or config.data.train_split,
        "val_split": p.get("val_split") or "validation",
        "l2_grid": tuple(float(v) for v in (p.get("l2_grid") or DEFAULT_L2_GRID)),
        "knn_k": int(p.get("knn_k") or 20),
        "knn_temperature": p.get("knn_temperature", 0.07),
        "max_iter": int(p.get("max_iter") or 1000),
    }


def embedding_normalisation(method: Method) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel ``(mean, std)`` the member's training inputs were normalised with:
    its views' (``config.data.views``, see ``jaxdiv.data.views.ViewConfig``), else
    CIFAR-10's (the one-view augmentation's)."""
    views = getattr(method, "views", None)
    if not views:
        return augment.CIFAR10_MEAN, augment.CIFAR10_STD
    norms = {(v.mean, v.std) if v.normalize else ((0.0,) * 3, (1.0,) * 3) for v in views}
    if len(norms) > 1:
        raise JaxdivError(
            "the two views are normalised differently (data.view1 / data.view2 mean, std or "
            "normalize); the offline probe needs one normalisation: set them in data.views"
        )
    return norms.pop()


def make_embed_fn(method: Method, mesh: Mesh) -> Callable:
    """Jitted (variables, uint8 images) -> (None, embedding), normalised as in training."""
    mean, std = embedding_normalisation(method)

    def fn(variables, images):
        return method.predict(variables, augment.normalize(images, mean, std))

    return jax.jit(
        fn,
        in_shardings=(replicated(mesh), batch_sharded(mesh)),
        out_shardings=batch_sharded(mesh),
    )


def embed(
    method: Method,
    variables,
    split: ArraySplit,
    mesh: Mesh,
    batch_size: int = 500,
    embed_fn: Callable | None = None,
) -> np.ndarray:
    """Eval-mode embeddings [N, D] of a whole split (un-augmented images, normalised as in
    training); pass ``embed_fn`` (``make_embed_fn``) to reuse one compilation."""
    embed_fn = embed_fn or make_embed_fn(method, mesh)
    _, emb = predict_split(
        method, variables, split, mesh, batch_size=batch_size, predict_fn=embed_fn
    )
    return emb


def _metrics(probe: LinearProbe, grid: dict, fit_x, fit_y, val_x, val_y, knn: dict) -> dict:
    chosen = grid[probe.l2]
    return {
        "offline_probe_l2": probe.l2,
        "offline_probe_val_accuracy": chosen["accuracy"],
        "offline_probe_val_loss": chosen["loss"],
        "offline_probe_converged": chosen["converged"],
        "offline_probe_fit_accuracy": accuracy_and_loss(probe.logits(fit_x), fit_y)["accuracy"],
        "knn_val_accuracy": knn_accuracy(fit_x, fit_y, val_x, val_y, **knn),
    }


def evaluate_representation(
    method: Method,
    variables,
    mesh: Mesh,
    fit: ArraySplit,
    val: ArraySplit,
    others: dict[str, ArraySplit] | None = None,
    *,
    num_classes: int,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    knn_k: int = 20,
    knn_temperature: float | None = 0.07,
    max_iter: int = 1000,
    batch_size: int = 500,
) -> tuple[LinearProbe, dict[str, float], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Fit the offline probe on ``fit`` (L2 chosen on ``val``) and score kNN (memory bank:
    ``fit``). Returns (the probe, metrics, {split name: (embeddings, probe logits)}) for
    ``val`` (key ``"val"``) and each of ``others``."""
    embed_fn = make_embed_fn(method, mesh)
    fit_x = embed(method, variables, fit, mesh, batch_size, embed_fn)
    val_x = embed(method, variables, val, mesh, batch_size, embed_fn)
    probe, grid = fit_linear_probe(
        fit_x, fit.labels, val_x, val.labels, num_classes, l2_grid, max_iter=max_iter
    )
    knn = {"num_classes": num_classes, "k": min(knn_k, len(fit_x)), "temperature": knn_temperature}
    metrics = _metrics(probe, grid, fit_x, fit.labels, val_x, val.labels, knn)
    outputs = {"val": (val_x, probe.logits(val_x))}
    for name, split in (others or {}).items():
        x = embed(method, variables, split, mesh, batch_size, embed_fn)
        logits = probe.logits(x)
        outputs[name] = (x, logits)
        metrics[f"offline_probe_{name}_accuracy"] = accuracy_and_loss(logits, split.labels)[
            "accuracy"
        ]
        metrics[f"knn_{name}_accuracy"] = knn_accuracy(fit_x, fit.labels, x, split.labels, **knn)
    return probe, metrics, outputs


# --- the probe of a trained member, as predict uses it ----------------------------------------


class OfflineProbe:
    """The offline probe of one restored member: fitted (or loaded from ``WORKDIR/
    offline_probe``) on first use, then scoring any split. ``refit=True`` ignores the kept
    probe. ``metrics`` and ``classifier`` describe the probe for the member's store info."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        workdir: str | Path,
        method: Method,
        variables,
        mesh: Mesh,
        num_classes: int,
        step: int,
        *,
        refit: bool = False,
    ):
        self.config, self.method, self.variables, self.mesh = config, method, variables, mesh
        self.num_classes, self.step, self.refit = num_classes, int(step), refit
        self.settings = probe_settings(config)
        self.cache = Path(workdir) / CACHE_DIR
        self.batch_size = int(config.get("eval_batch_size", 500))
        self.embed_fn = make_embed_fn(method, mesh)
        self.probe: LinearProbe | None = None
        self.metrics: dict = {}
        self.classifier = ""
        self._bank: tuple[np.ndarray, np.ndarray] | None = None  # fit embeddings, labels
        self._val: np.ndarray | None = None

    def _key(self) -> dict:
        """What the kept probe must match: checkpoint, probe settings, normalisation and the
        data config (how the fit and validation images are read)."""
        mean, std = embedding_normalisation(self.method)
        return json_safe(
            {
                "checkpoint_step": self.step,
                "settings": self.settings,
                "mean": mean,
                "std": std,
                "data": self.config.data.to_dict(),
            }
        )

    def _load(self) -> bool:
        meta_path, arrays_path = self.cache / "probe.json", self.cache / "probe.npz"
        if self.refit or not (meta_path.exists() and arrays_path.exists()):
            return False
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != self._key():
            return False
        with np.load(arrays_path) as a:
            self.probe = LinearProbe(a["weights"], a["bias"], a["mean"], a["scale"], meta["l2"])
        self.metrics, self.classifier = meta["metrics"], meta["classifier"]
        return True

    def _save(self) -> None:
        if jax.process_index() != 0:
            return
        p = self.probe
        with staged_folder(self.cache) as tmp:
            np.savez(tmp / "probe.npz", weights=p.weights, bias=p.bias, mean=p.mean, scale=p.scale)
            meta = {
                "key": self._key(),
                "l2": p.l2,
                "metrics": self.metrics,
                "classifier": self.classifier,
            }
            (tmp / "probe.json").write_text(json.dumps(json_safe(meta), indent=2, sort_keys=True))

    def _embed(self, split: ArraySplit) -> np.ndarray:
        return embed(self.method, self.variables, split, self.mesh, self.batch_size, self.embed_fn)

    def _knn(self) -> dict:
        k = min(self.settings["knn_k"], len(self._bank[0]))
        return {
            "num_classes": self.num_classes,
            "k": k,
            "temperature": self.settings["knn_temperature"],
        }

    def fit(self) -> LinearProbe:
        """The probe: kept from an earlier fit with the same key, else fitted now (reading
        the fit and validation splits) and kept."""
        if self.probe is not None or self._load():
            return self.probe
        s = self.settings
        fit = streaming.eval_split(self.config.data, s["fit_split"])
        val = streaming.eval_split(self.config.data, s["val_split"])
        # The probe's classes are the fit split's (CIFAR-10's for a member pre-trained on
        # procedural pseudo-classes), not the training split's.
        self.num_classes = int(fit.num_classes)
        fit_x, val_x = self._embed(fit), self._embed(val)
        self.probe, grid = fit_linear_probe(
            fit_x,
            fit.labels,
            val_x,
            val.labels,
            self.num_classes,
            s["l2_grid"],
            max_iter=s["max_iter"],
        )
        self._bank, self._val = (fit_x, fit.labels), val_x
        self.metrics = _metrics(self.probe, grid, fit_x, fit.labels, val_x, val.labels, self._knn())
        self.classifier = (
            f"offline linear probe (L2 {self.probe.l2:g} chosen on {s['val_split']}, "
            f"fit on {s['fit_split']})"
        )
        self._save()
        return self.probe

    def predict(self, split_name: str, split: ArraySplit) -> tuple[np.ndarray, np.ndarray, dict]:
        """(probe logits [N, C], embeddings [N, D], this split's offline-probe and kNN
        accuracies) for ``split`` (read as ``split_name``)."""
        probe = self.fit()
        if split_name == self.settings["val_split"]:
            x = self._val if self._val is not None else self._embed(split)
            return probe.logits(x), x, {}
        x = self._embed(split)
        logits = probe.logits(x)
        metrics = {
            f"offline_probe_{split_name}_accuracy": accuracy_and_loss(logits, split.labels)[
                "accuracy"
            ]
        }
        if self._bank is not None:
            metrics[f"knn_{split_name}_accuracy"] = knn_accuracy(
                *self._bank, x, split.labels, **self._knn()
            )
        return logits, x, metrics
