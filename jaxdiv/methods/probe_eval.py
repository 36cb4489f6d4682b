"""Evaluating representations: the OFFLINE linear probe and a kNN classifier on frozen
embeddings, and writing the probe's logits into the prediction store.

The offline probe is multinomial logistic regression (full-batch L-BFGS) on standardised
embeddings of un-augmented images, with its L2 strength chosen on a validation split. Its
numbers are reported as ``offline_probe_*`` and never mixed with the ``online_probe_*``
numbers logged during pretraining (a probe trained on augmented views while the backbone
moved).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import optax.tree_utils as otu

from jaxdiv.data.datasets import ArraySplit, load_split
from jaxdiv.errors import JaxdivError

DEFAULT_L2_GRID: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


# --- multinomial logistic regression --------------------------------------------------------


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


def _objective(wb, x, y, l2):
    w, b = wb
    logits = x @ w + b
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return ce + 0.5 * l2 * jnp.sum(jnp.square(w))


@jax.jit
def _lbfgs(x, y, l2, w0, b0, max_iter, tol):
    opt = optax.lbfgs()
    fun = lambda wb: _objective(wb, x, y, l2)  # noqa: E731
    value_and_grad = optax.value_and_grad_from_state(fun)

    def step(carry):
        wb, state = carry
        value, grad = value_and_grad(wb, state=state)
        updates, state = opt.update(grad, state, wb, value=value, grad=grad, value_fn=fun)
        return optax.apply_updates(wb, updates), state

    def keep_going(carry):
        _, state = carry
        it = otu.tree_get(state, "count")
        grad = otu.tree_get(state, "grad")
        return (it == 0) | ((it < max_iter) & (otu.tree_norm(grad) >= tol))

    wb, state = jax.lax.while_loop(keep_going, step, ((w0, b0), opt.init((w0, b0))))
    return wb, otu.tree_get(state, "count")


def fit_logistic_regression(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    l2: float,
    *,
    max_iter: int = 1000,
    tol: float = 1e-5,
    init: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``argmin_{W, b} mean CE(x W + b, y) + l2 / 2 * ||W||^2`` (bias unpenalised) by L-BFGS.

    This is scikit-learn's ``LogisticRegression(C=1 / (l2 * N))`` objective divided by N.
    Returns ``(W [D, C], b [C])`` as float32 NumPy arrays.
    """
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.int32)
    if init is None:
        init = (np.zeros((x.shape[1], num_classes), np.float32), np.zeros(num_classes, np.float32))
    (w, b), _ = _lbfgs(
        x,
        y,
        jnp.float32(l2),
        jnp.asarray(init[0]),
        jnp.asarray(init[1]),
        max_iter,
        jnp.float32(tol),
    )
    return np.asarray(w), np.asarray(b)


def _accuracy_and_nll(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    logp = jax.nn.log_softmax(jnp.asarray(logits), -1)
    nll = -float(jnp.take_along_axis(logp, jnp.asarray(y)[:, None], -1).mean())
    return float((np.argmax(logits, -1) == y).mean()), nll


@dataclasses.dataclass(frozen=True)
class ProbeFit:
    probe: LinearProbe
    val_accuracy: float
    val_loss: float
    grid: dict[float, float]  # l2 -> validation accuracy


def fit_linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    num_classes: int,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    *,
    max_iter: int = 1000,
) -> ProbeFit:
    """Fit one probe per L2 strength on ``train``; keep the best validation accuracy (ties:
    lower validation loss). Features are standardised with the training mean and std."""
    if len(train_x) == 0 or len(val_x) == 0:
        raise JaxdivError("the linear probe needs non-empty fit and validation splits")
    if train_x.shape[1] != val_x.shape[1]:
        raise JaxdivError(
            f"fit and validation embeddings differ in width: {train_x.shape[1]} vs {val_x.shape[1]}"
        )
    if not l2_grid or any(v < 0 for v in l2_grid):
        raise JaxdivError(f"l2_grid must be a non-empty list of strengths >= 0, got {l2_grid}")
    train_x = np.asarray(train_x, np.float32)
    mean = train_x.mean(0)
    std = train_x.std(0)
    scale = np.where(std > 1e-6, std, 1.0).astype(np.float32)
    z = (train_x - mean) / scale
    best: tuple[tuple[float, float], LinearProbe] | None = None
    grid: dict[float, float] = {}
    init = None
    for l2 in sorted(l2_grid, reverse=True):  # strong to weak, warm-started
        w, b = fit_logistic_regression(z, train_y, num_classes, l2, max_iter=max_iter, init=init)
        init = (w, b)
        probe = LinearProbe(w, b, mean, scale, float(l2))
        acc, nll = _accuracy_and_nll(probe.logits(val_x), np.asarray(val_y))
        grid[float(l2)] = acc
        if best is None or (acc, -nll) > best[0]:
            best = ((acc, -nll), probe)
    (acc, neg_nll), probe = best
    return ProbeFit(probe, acc, -neg_nll, grid)


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


# --- from a trained member ------------------------------------------------------------------


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
        "l2_grid": tuple(p.get("l2_grid") or DEFAULT_L2_GRID),
        "knn_k": int(p.get("knn_k") or 20),
        "knn_temperature": p.get("knn_temperature", 0.07),
        "max_iter": int(p.get("max_iter") or 1000),
    }


def embed(
    method, variables, split: ArraySplit, mesh, batch_size: int = 500, predict_fn=None
) -> np.ndarray:
    """Eval-mode embeddings [N, D] of a whole split (un-augmented, normalised images);
    pass ``predict_fn`` (``train.evaluate.make_predict_fn``) to reuse one compilation."""
    from jaxdiv.train.evaluate import predict_split

    _, emb = predict_split(
        method, variables, split, mesh, batch_size=batch_size, predict_fn=predict_fn
    )
    return emb


def evaluate_representation(
    method,
    variables,
    mesh,
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
) -> tuple[ProbeFit, dict[str, float], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Fit the offline probe on ``fit`` (L2 chosen on ``val``) and score kNN (memory bank:
    ``fit``). Returns (the fit, metrics, {split name: (embeddings, probe logits)}) for
    ``val`` (key ``"val"``) and each of ``others``."""
    from jaxdiv.train.evaluate import make_predict_fn

    predict_fn = make_predict_fn(method, mesh)
    fit_x = embed(method, variables, fit, mesh, batch_size, predict_fn)
    val_x = embed(method, variables, val, mesh, batch_size, predict_fn)
    result = fit_linear_probe(
        fit_x, fit.labels, val_x, val.labels, num_classes, l2_grid, max_iter=max_iter
    )
    k = min(knn_k, len(fit_x))
    metrics = {
        "offline_probe_l2": result.probe.l2,
        "offline_probe_val_accuracy": result.val_accuracy,
        "offline_probe_val_loss": result.val_loss,
        "offline_probe_fit_accuracy": _accuracy_and_nll(result.probe.logits(fit_x), fit.labels)[0],
        "knn_val_accuracy": knn_accuracy(
            fit_x, fit.labels, val_x, val.labels, num_classes, k=k, temperature=knn_temperature
        ),
    }
    outputs = {"val": (val_x, result.probe.logits(val_x))}
    for name, split in (others or {}).items():
        x = embed(method, variables, split, mesh, batch_size, predict_fn)
        logits = result.probe.logits(x)
        outputs[name] = (x, logits)
        metrics[f"offline_probe_{name}_accuracy"] = _accuracy_and_nll(logits, split.labels)[0]
        metrics[f"knn_{name}_accuracy"] = knn_accuracy(
            fit_x, fit.labels, x, split.labels, num_classes, k=k, temperature=knn_temperature
        )
    return result, metrics, outputs


def predict_member_with_probe(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    store_dir: str | Path,
    splits: Sequence[str],
    *,
    name: str | None = None,
    overwrite: bool = False,
) -> dict[str, dict[str, float]]:
    """Like ``jaxdiv.predict.predict_member`` for a representation learner: fit the offline
    probe (``config.probe``), then write its logits and the embeddings of each split into
    the store. The member's info records the probe's L2, its validation accuracy and kNN
    accuracies under ``metrics``. Returns accuracy/loss per written split."""
    from jaxdiv.predict import member_info
    from jaxdiv.store.splits import store_split_name
    from jaxdiv.store.store import Store
    from jaxdiv.train.loop import restore_variables

    workdir = Path(workdir)
    name = name or config.get("name") or workdir.name
    store = Store(store_dir)
    todo = [
        s
        for s in splits
        if overwrite or not (store.exists() and store.has_member(name, store_split_name(s)))
    ]
    if not todo:
        return {}
    settings = probe_settings(config)
    setup, variables, step = restore_variables(config, workdir)
    data_dir = config.data.get("data_dir")

    def load(split_name):
        return load_split(config.data.dataset, split_name, data_dir)

    fit, val = load(settings["fit_split"]), load(settings["val_split"])
    others = {s: load(s) for s in todo if s != settings["val_split"]}
    result, metrics, outputs = evaluate_representation(
        setup.method,
        variables,
        setup.mesh,
        fit,
        val,
        others,
        num_classes=setup.num_classes,
        l2_grid=settings["l2_grid"],
        knn_k=settings["knn_k"],
        knn_temperature=settings["knn_temperature"],
        max_iter=settings["max_iter"],
        batch_size=int(config.get("eval_batch_size", 500)),
    )
    outputs[settings["val_split"]] = outputs.pop("val")
    info = member_info(config, workdir, step)
    info["name"] = name
    info["classifier"] = (
        f"offline linear probe (L2 {result.probe.l2:g} chosen on "
        f"{settings['val_split']}, fit on {settings['fit_split']})"
    )
    if name in store.all_members():
        info["metrics"] = {**store.member_info(name).get("metrics", {}), **info["metrics"]}
    info.setdefault("metrics", {}).update(metrics)
    results: dict[str, dict[str, float]] = {}
    for split_name in todo:
        split = others[split_name] if split_name in others else val
        emb, logits = outputs[split_name]
        key = store_split_name(split_name)
        store.write_split(key, split.labels, split.ids)
        store.write_member(name, key, logits, emb, overwrite=overwrite)
        acc, nll = _accuracy_and_nll(logits, split.labels)
        results[key] = {"accuracy": acc, "loss": nll}
        info["metrics"][f"{key}_accuracy"] = acc
    store.write_member_info(name, info)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jaxdiv.methods.probe_eval --workdir=RUN [--store=DIR] [--splits=a,b]``."""
    import argparse
    import sys

    from jaxdiv.train.workdir import load_config

    ap = argparse.ArgumentParser(
        prog="python -m jaxdiv.methods.probe_eval",
        description="Fit the offline linear probe of a trained representation learner, score "
        "kNN, and write the probe's logits and the embeddings into a store.",
    )
    ap.add_argument("--workdir", required=True, help="the trained run's directory")
    ap.add_argument("--store", default=None, help="prediction store (default WORKDIR/store)")
    ap.add_argument("--splits", default="validation,test", help="comma-separated splits")
    ap.add_argument("--member", default=None, help="member name (default config.name)")
    ap.add_argument("--overwrite", action="store_true", help="replace existing predictions")
    args = ap.parse_args(argv)
    try:
        config = load_config(Path(args.workdir))
        store = args.store or str(Path(args.workdir) / "store")
        results = predict_member_with_probe(
            config,
            args.workdir,
            store,
            [s for s in args.splits.split(",") if s],
            name=args.member,
            overwrite=args.overwrite,
        )
    except JaxdivError as err:
        print(f"probe_eval: error: {err}", file=sys.stderr)
        return 2
    if not results:
        print(f"nothing to do: the member's splits are already in {store}")
        return 0
    from jaxdiv.store.store import Store

    name = args.member or config.get("name") or Path(args.workdir).name
    metrics = Store(store).member_info(name)["metrics"]
    for key in sorted(metrics):
        if key.startswith(("offline_probe", "knn_")):
            value = metrics[key]
            print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    for split, m in results.items():
        print(
            f"{split}: offline-probe accuracy {m['accuracy']:.4f}  loss {m['loss']:.4f}  -> {store}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
