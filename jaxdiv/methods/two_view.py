"""What every two-view self-supervised method shares: views, one online forward pass, the
online probe, eval-mode embeddings, and the config checks that run before any compute.

A subclass only supplies ``objective`` (and, for BYOL, a target network). Both views go
through the network as ONE batch ``concat(view1, view2)``, so batch-norm statistics, like the
contrastive negatives, are taken over the global two-view batch (SimCLR's global BN) when the
batch is sharded over the mesh's ``data`` axis.

Metrics (the trainer logs them as ``train_<name>``):
  ``loss``: what the optimiser minimises, ``ssl_loss + online_probe_loss``;
  ``ssl_loss``: the self-supervised objective alone;
  ``online_probe_loss`` / ``online_probe_accuracy``: the ONLINE linear probe on the
  stop-gradient embedding of the augmented training views (not comparable with the offline
  probe of ``jaxdiv.store.probe``, which is fit on frozen embeddings of un-augmented images).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxdiv.data.views import ViewConfig, two_views
from jaxdiv.errors import JaxdivError
from jaxdiv.methods.base import Variables
from jaxdiv.methods.heads import HeadConfig, TwoViewNet, backbone_only
from jaxdiv.models.mixer import MlpMixer
from jaxdiv.models.simple import MLP, SimpleCNN
from jaxdiv.models.vit import ViT

# Collections that belong to the online network (everything else, e.g. "target", does not).
_ONLINE = ("batch_stats",)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TwoViewMethod:
    """Base of SimCLR, BYOL, SimSiam, Barlow Twins, VICReg (see the module docstring)."""

    net: TwoViewNet
    num_classes: int
    views: tuple[ViewConfig, ViewConfig] = (ViewConfig(), ViewConfig())
    name: str = "two_view"
    num_views: int = 2

    # --- the Method protocol --------------------------------------------------------------
    def init(self, rng: jax.Array, images: jax.Array) -> Variables:
        return dict(self.net.init({"params": rng}, images, train=False))

    def augment(self, rng: jax.Array, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        return two_views(rng, images, self.views)

    def loss(self, params, variables: Variables, inputs, labels, rng, step):
        x = self._stack_views(inputs)
        online = {"params": params, **{k: variables[k] for k in _ONLINE if k in variables}}
        mutable = [k for k in _ONLINE if k in variables]
        out, updates = self.net.apply(online, x, train=True, rngs={"dropout": rng}, mutable=mutable)
        ssl, extra_state, extra_metrics = self.objective(
            params, variables, out, x, labels, rng, step
        )
        logits = out["probe_logits"]
        y = jnp.concatenate([labels, labels])
        probe_loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        probe_acc = (jnp.argmax(logits, -1) == y).mean()
        total = ssl + probe_loss
        new_state = {**variables, **updates, **extra_state}
        metrics = {
            "loss": total,
            "ssl_loss": ssl,
            "online_probe_loss": probe_loss,
            "online_probe_accuracy": probe_acc,
            **extra_metrics,
        }
        return total, (new_state, metrics)

    def after_update(self, params: Any, variables: Variables, step) -> Variables:
        return variables

    def predict(self, variables: Variables, images: jax.Array) -> tuple[None, jax.Array]:
        """``(None, embedding)``: no logits until the offline probe is fit (``jaxdiv predict``,
        ``jaxdiv.store.probe``); the online probe is deliberately not offered as the member's
        classifier."""
        return None, self.net.apply(
            self._online_variables(variables), images, method=TwoViewNet.embed
        )

    # --- for subclasses and evaluation ----------------------------------------------------
    def objective(
        self,
        params,
        variables: Variables,
        out: dict[str, jax.Array],
        x: jax.Array,
        labels: jax.Array,
        rng: jax.Array,
        step: jax.Array,
    ) -> tuple[jax.Array, Variables, dict[str, jax.Array]]:
        """(self-supervised loss, state updates, extra metrics) from the online outputs on
        ``x = concat(view1, view2)``."""
        raise NotImplementedError

    def online_probe_logits(self, variables: Variables, images: jax.Array) -> jax.Array:
        """The online probe's logits on normalised images, eval mode (for reporting only)."""
        return self.net.apply(
            self._online_variables(variables), images, method=TwoViewNet.probe_logits
        )

    def _online_variables(self, variables: Variables) -> Variables:
        return {k: v for k, v in variables.items() if k == "params" or k in _ONLINE}

    def _stack_views(self, inputs) -> jax.Array:
        if (
            not isinstance(inputs, tuple | list)
            or len(inputs) != 2
            or inputs[0].shape != inputs[1].shape
        ):
            got = getattr(inputs, "shape", type(inputs).__name__)
            raise JaxdivError(
                f"method {self.name!r} needs two augmented views per image (a pair of "
                f"[B, H, W, 3] batches from its augment()), got {got}; a one-view pipeline "
                "cannot feed it"
            )
        return jnp.concatenate([inputs[0], inputs[1]], axis=0)


def views_from_config(
    config: ml_collections.ConfigDict, name: str
) -> tuple[ViewConfig, ViewConfig]:
    """``config.data.views`` (both views), with ``data.view1`` / ``data.view2`` overrides."""
    data = config.data
    num_views = int(data.get("num_views", 2))
    if num_views != 2 or data.get("views") is None:
        have = (
            f"data.num_views={num_views}"
            if num_views != 2
            else "no data.views (a one-view pipeline such as crop_padding/flip)"
        )
        raise JaxdivError(
            f"method {name!r} needs a two-view augmentation pipeline but the config has {have}; "
            f"set config.data.views (ViewConfig fields), e.g. start from "
            f"configs/cifar10_{name}.py"
        )
    valid = {f.name for f in dataclasses.fields(ViewConfig)}
    base = dict(data.views)
    pair = []
    for key in ("view1", "view2"):
        fields = {**base, **dict(data.get(key) or {})}
        unknown = sorted(set(fields) - valid)
        if unknown:
            raise JaxdivError(
                f"unknown view option(s) {', '.join(unknown)} in config.data; "
                f"valid options: {', '.join(sorted(valid))}"
            )
        pair.append(ViewConfig(**fields))
    return pair[0], pair[1]


def check_batch_size(config: ml_collections.ConfigDict, name: str, minimum: int, why: str) -> None:
    batch = int(config.batch_size)
    if batch < minimum:
        raise JaxdivError(f"method {name!r} needs batch_size >= {minimum} ({why}), got {batch}")


def _one_size_only(model) -> bool:
    """True for backbones whose weights fix the input size (flattening or token-count layers)."""
    if isinstance(model, SimpleCNN):
        return model.pool != "mean"
    return isinstance(model, MLP | ViT | MlpMixer)


def check_crop_size(method, model, image_side: int, config: ml_collections.ConfigDict) -> None:
    """Refuse views resized away from the images' side for a backbone that takes one size.

    Such a backbone (a flattening cnn, an MLP, a ViT or Mixer with learned token weights) would
    pre-train on the crops and then fail, deep inside flax, when the probe reads whole images.
    """
    views = getattr(method, "views", None) or ()
    sizes = sorted({v.out_size for v in views if v.out_size not in (None, image_side)})
    if sizes and _one_size_only(model):
        raise JaxdivError(
            f"method {config.method.name!r}: data.views.out_size={sizes[0]} pre-trains on "
            f"crops resized from {image_side}x{image_side} images, but model "
            f"{config.model.name!r} takes only the size it is built for, so its probe could not "
            "read whole images; use a globally pooled backbone (resnet, wide_resnet, or cnn "
            "with model.kwargs.pool='mean') or drop out_size"
        )


def common_fields(
    config: ml_collections.ConfigDict,
    model,
    num_classes: int,
    name: str,
    *,
    projector: HeadConfig,
    predictor: HeadConfig | None,
    predictor_required: bool = False,
) -> dict[str, Any]:
    """Views, network (heads from ``config.method.projector`` / ``.predictor``) and name."""
    views = views_from_config(config, name)
    m = config.method
    proj = HeadConfig.from_config(m.get("projector"), projector)
    pred = predictor
    if "predictor" in m:
        pred = (
            None
            if m.predictor is None
            else HeadConfig.from_config(m.predictor, predictor or HeadConfig())
        )
    if predictor_required and pred is None:
        raise JaxdivError(f"method {name!r} needs a prediction head; set config.method.predictor")
    if pred is not None and pred.out != proj.out:
        raise JaxdivError(
            f"method {name!r}: the predictor's output width ({pred.out}) must equal the "
            f"projector's ({proj.out}) since predictions regress projections"
        )
    net = TwoViewNet(
        backbone=backbone_only(model), projector=proj, predictor=pred, num_classes=num_classes
    )
    return {"net": net, "num_classes": num_classes, "views": views, "name": name}
