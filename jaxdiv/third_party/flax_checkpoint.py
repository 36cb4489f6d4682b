"""flax parameter checkpoints with a flax module (``flax:resnet20``, ``flax:pkg.module:factory``).

``MODEL`` is a name in jaxdiv's model registry (``jaxdiv.models.registry.build_model``) or
``package.module:factory``, a callable ``factory(num_classes, **options)`` returning a flax
module whose ``apply(variables, images, train=False)`` gives ``(logits, embedding)``, as
jaxdiv's models do. The weights file is

- ``.npz`` in big_vision's layout: one array per parameter, the tree path joined by ``/``
  (``params/...`` and ``batch_stats/...``, or bare parameter paths);
- ``.msgpack``: ``flax.serialization.to_bytes`` of the variables (``{"params": ...,
  "batch_stats": ...}``) or of the parameters alone;

or ``"random"`` (``model.init`` with seed 0). The tree is checked against the module's own
(``jax.eval_shape`` of ``init``) before anything runs; flax has no weight cache, so ``weights``
is required. An optional JSON file beside the weights (``params.npz`` -> ``params.json``), or
the constructor's keywords, sets ``options`` (model keywords), ``image_size`` (a bilinear
resize to S x S; none by default), ``mean`` and ``std`` (per channel, of pixels in [0, 1];
CIFAR-10's by default, as jaxdiv's own training normalises). With the defaults the forward
pass is ``jaxdiv predict``'s: ``model.apply(variables, normalize(images), train=False)``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization, traverse_util

from jaxdiv.data.augment import CIFAR10_MEAN, CIFAR10_STD, normalize
from jaxdiv.errors import JaxdivError
from jaxdiv.models.registry import MODEL_NAMES, build_model
from jaxdiv.third_party import RANDOM

_COLLECTIONS = ("params", "batch_stats")


def build_module(model: str, num_classes: int, options: dict):
    """The flax module ``model`` (a registry name or ``package.module:factory``)."""
    if ":" not in model:
        return build_model(model, num_classes, **options)
    path, _, attr = model.partition(":")
    try:
        factory = getattr(importlib.import_module(path), attr)
    except (ImportError, AttributeError) as err:
        raise JaxdivError(
            f"flax:{model}: cannot import {attr!r} from {path!r} ({err}); give a registry "
            f"name ({', '.join(MODEL_NAMES)}) or package.module:factory"
        ) from None
    return factory(num_classes, **options)


def read_variables(path: Path, owner: str) -> dict:
    """The variables tree ``{"params": ..., ...}`` of a ``.npz`` or ``.msgpack`` file."""
    if not path.is_file():
        raise JaxdivError(f"{owner}: --weights={path}: no such file")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                flat = {tuple(k.split("/")): f[k] for k in f.files}
            tree = traverse_util.unflatten_dict(flat)
        elif path.suffix == ".msgpack":
            tree = serialization.msgpack_restore(path.read_bytes())
        else:
            raise JaxdivError(
                f"{owner}: --weights={path} must be .npz (big_vision's layout) or .msgpack "
                "(flax.serialization.to_bytes)"
            )
    except JaxdivError:
        raise
    except Exception as err:  # truncated, pickled, not a checkpoint
        raise JaxdivError(f"{owner}: cannot read {path} ({type(err).__name__}: {err})") from None
    if not isinstance(tree, dict):
        raise JaxdivError(f"{owner}: {path} does not hold a tree of arrays")
    if "params" not in tree:
        tree = {"params": tree}
    return {k: v for k, v in tree.items() if k in _COLLECTIONS}


def _shape_differences(theirs: dict, ours: dict) -> list[str]:
    a = traverse_util.flatten_dict(theirs, sep="/")
    b = traverse_util.flatten_dict(ours, sep="/")
    out = [f"{k}: missing" for k in b if k not in a]
    out += [f"{k}: unknown" for k in a if k not in b]
    out += [
        f"{k}: {list(np.shape(a[k]))} in the file, {list(b[k].shape)} in the model"
        for k in b
        if k in a and tuple(np.shape(a[k])) != tuple(b[k].shape)
    ]
    return out


class FlaxAdapter:
    kind = "flax"

    def __init__(
        self,
        model: str,
        *,
        weights: str | None,
        num_classes: int,
        options: dict | None = None,
        image_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ):
        self.owner = f"flax:{model}"
        if weights is None:
            raise JaxdivError(
                f"{self.owner}: flax checkpoints have no cache to read from; pass "
                "--weights=FILE (.npz or .msgpack) or --weights=random"
            )
        side: dict[str, Any] = {}
        sidecar = Path(weights).with_suffix(".json")
        if weights != RANDOM and sidecar.is_file():
            try:
                side = json.loads(sidecar.read_text())
            except ValueError as err:
                raise JaxdivError(f"{self.owner}: {sidecar} is not JSON ({err})") from None
        self.model, self.num_classes = model, num_classes
        self.weights_source = weights

        def setting(value, key, default=None):
            return value if value is not None else side.get(key, default)

        self.options = dict(setting(options, "options", {}))
        self.module = build_module(model, num_classes, self.options)
        size = setting(image_size, "image_size")
        self.preprocessing = {
            "image_size": None if size is None else int(size),
            "resize": "bilinear",
            "mean": [float(v) for v in setting(mean, "mean", CIFAR10_MEAN)],
            "std": [float(v) for v in setting(std, "std", CIFAR10_STD)],
        }
        self.variables = None  # loaded at the first batch, when the input size is known
        self._apply = jax.jit(self._forward)

    def preprocess(self, images) -> jax.Array:
        """uint8 [B, H, W, 3] -> ``(x / 255 - mean) / std``, resized to ``image_size``."""
        p = self.preprocessing
        x = normalize(images, p["mean"], p["std"])
        size = p["image_size"]
        if size is not None and x.shape[1:3] != (size, size):
            x = jax.image.resize(x, (x.shape[0], size, size, x.shape[3]), "bilinear")
        return x

    def _forward(self, variables, images):
        return self.module.apply(variables, self.preprocess(images), train=False)

    def load(self, image_shape: tuple[int, ...]) -> dict:
        """The variables, checked against the module's own tree for ``image_shape`` inputs."""
        size = self.preprocessing["image_size"]
        shape = (1, *image_shape) if size is None else (1, size, size, image_shape[-1])
        init = lambda: self.module.init(jax.random.key(0), jnp.zeros(shape), train=False)  # noqa: E731
        if self.weights_source == RANDOM:
            return jax.jit(init)()
        abstract = jax.eval_shape(init)
        theirs = read_variables(Path(self.weights_source), self.owner)
        diff = _shape_differences(theirs, abstract)
        if diff:
            raise JaxdivError(
                f"{self.owner}: the weights in {self.weights_source} do not fit the module "
                f"({'; '.join(diff[:3])}{f'; +{len(diff) - 3} more' if diff[3:] else ''}); "
                "pass a checkpoint of this model, its options in the JSON beside it"
            )
        return jax.tree.map(lambda v, a: jnp.asarray(v, a.dtype), theirs, abstract)

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.variables is None:
            self.variables = self.load(tuple(images.shape[1:]))
        logits, embedding = self._apply(self.variables, images)
        if logits is None:
            raise JaxdivError(f"{self.owner}: the module returned no logits (num_classes=0?)")
        return np.asarray(logits, np.float32), np.asarray(embedding, np.float32)
