"""Evaluate an outside model (an adapter, ``jaxdiv.third_party``) on a TFDS split into the store.

The split is read as ``jaxdiv predict`` reads it (``jaxdiv.data.streaming.eval_split``: ids,
labels and the split's source), batched in order (``jaxdiv.data.loader.eval_batches``, the
padded rows dropped) with a progress bar; logits and penultimate embeddings are written as
one member through ``jaxdiv.store.add_member``, so they pass the importer's checks and the
split's identity (``split.json``) is recorded as for a trained member.
"""

from __future__ import annotations

import sys
from pathlib import Path

import ml_collections
import numpy as np
from tqdm.auto import tqdm

from jaxdiv.data import streaming
from jaxdiv.data.loader import eval_batches
from jaxdiv.errors import JaxdivError
from jaxdiv.store.importer import add_member
from jaxdiv.store.splits import store_split_name
from jaxdiv.store.store import Store
from jaxdiv.third_party import RANDOM, build_adapter, default_member_name, parse_spec


def _check_weights(weights: str | None) -> None:
    if weights is None or weights == RANDOM:
        return
    if not Path(weights).exists():
        raise JaxdivError(
            f"--weights={weights}: no such file or folder; give the path of a local weights "
            f"file, leave --weights out to use the model's weights from your cache, or pass "
            f"--weights={RANDOM} for a randomly initialised model"
        )


def predict_batches(adapter, split, batch_size: int, *, progress: bool = True, desc: str = ""):
    """``(logits [N, C], embeddings [N, D])`` of ``adapter`` on every example of ``split``,
    in the split's order."""
    logits, embeddings = [], []
    with tqdm(
        total=len(split), desc=desc, unit="img", file=sys.stderr, disable=not progress
    ) as bar:
        for batch in eval_batches(split, batch_size):
            keep = batch["mask"]
            out, emb = adapter.predict(batch["image"])
            out, emb = np.asarray(out)[keep], np.asarray(emb)[keep]
            if out.ndim != 2 or emb.ndim != 2:
                raise JaxdivError(
                    f"{adapter.kind}:{adapter.model} gave logits {out.shape} and embeddings "
                    f"{emb.shape}; expected [batch, classes] and [batch, features]"
                )
            logits.append(out)
            embeddings.append(emb)
            bar.update(int(keep.sum()))
    return np.concatenate(logits), np.concatenate(embeddings)


def evaluate(
    adapter: str,
    split: str,
    store_dir: str | Path,
    *,
    weights: str | None = None,
    name: str | None = None,
    batch_size: int = 64,
    dataset: str = "cifar10",
    data_dir: str | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate ``adapter`` (``KIND:MODEL``) on ``dataset``'s ``split`` and add it to the store
    at ``store_dir`` as member ``name`` (default ``KIND-MODEL``); returns ``name``, the store
    split, the number of examples and the accuracy. ``weights``: a local file or folder, the
    user's cache when None, or ``"random"``. Refused before any model runs when the member
    already has that split."""
    parse_spec(adapter)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise JaxdivError(f"--batch_size must be a positive integer, got {batch_size!r}")
    _check_weights(weights)
    name = name or default_member_name(adapter)
    key = store_split_name(split)
    store = Store(store_dir)
    store.member_dir(name)  # a valid name; nothing is created
    if store.exists() and store.has_member(name, key):
        raise JaxdivError(
            f"member {name!r} already has predictions for split {key!r} in {store.root}; "
            "pass another --member name or another --store"
        )
    data_cfg = ml_collections.ConfigDict({"dataset": dataset, "data_dir": data_dir})
    data = streaming.eval_split(data_cfg, split)
    model = build_adapter(adapter, weights=weights, num_classes=int(data.num_classes))
    logits, embeddings = predict_batches(
        model, data, batch_size, progress=progress, desc=f"evaluate {name} [{key}]"
    )
    accuracy = float((logits.argmax(-1) == data.labels).mean()) if len(data) else 0.0
    info = {
        "source": f"third_party:{model.kind}",
        "adapter": f"{model.kind}:{model.model}",
        "method": model.kind,
        "architecture": model.model,
        "weights": model.weights_source,
        "preprocessing": model.preprocessing,
        "options": getattr(model, "options", None),
        "dataset": dataset,
        "metrics": {f"{key}_accuracy": accuracy},
    }
    store.write_split(key, data.labels, data.ids, data.source)
    add_member(
        store_dir,
        key,
        name,
        ids=data.ids,
        logits=logits,
        embeddings=embeddings,
        labels=data.labels,
        info=info,
    )
    with store.lock_member_info(name):  # the member may hold other splits already
        current = store.member_info(name)
        metrics = {**(current.get("metrics") or {}), f"{key}_accuracy": accuracy}
        store.write_member_info(name, {**current, "metrics": metrics})
    return {"name": name, "split": key, "examples": len(data), "accuracy": accuracy}
