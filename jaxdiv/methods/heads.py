"""Projection and prediction heads, and the network that joins them to a backbone.

``TwoViewNet`` runs the backbone (built with ``num_classes=0``, so it returns only its pooled
embedding), a projection head, an optional prediction head, and the ONLINE linear probe. The
probe sees ``stop_gradient(embedding)``: it is trained alongside the objective but can never
shape the representation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax

from jaxdiv.errors import JaxdivError


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """An MLP head: ``[Dense-(BN)-ReLU] * len(hidden)`` then ``Dense(out)``-(BN).

    ``out_bn`` adds an affine-free BatchNorm on the output (SimSiam's projector).
    """

    hidden: tuple[int, ...] = (512,)
    out: int = 128
    hidden_bn: bool = True
    out_bn: bool = False

    def __post_init__(self):
        hidden = (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)
        object.__setattr__(self, "hidden", hidden)
        if any(not isinstance(h, int) or h < 1 for h in hidden) or self.out < 1:
            raise JaxdivError(
                f"head widths must be positive integers, got hidden={hidden}, out={self.out}"
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None, default: HeadConfig) -> HeadConfig:
        """Fields from a ConfigDict / dict (unknown keys are an error), else ``default``."""
        if cfg is None:
            return default
        fields = {f.name for f in dataclasses.fields(cls)}
        values = dict(cfg)
        unknown = sorted(set(values) - fields)
        if unknown:
            raise JaxdivError(
                f"unknown head option(s) {', '.join(unknown)}; valid options: "
                f"{', '.join(sorted(fields))}"
            )
        return dataclasses.replace(default, **values)


class MLPHead(nn.Module):
    """The head described by a ``HeadConfig``; BatchNorm uses PyTorch's momentum/epsilon."""

    cfg: HeadConfig

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        def bn(use_scale_bias: bool = True):
            return nn.BatchNorm(
                use_running_average=not train,
                momentum=0.9,
                epsilon=1e-5,
                use_scale=use_scale_bias,
                use_bias=use_scale_bias,
            )

        for width in self.cfg.hidden:
            x = nn.Dense(width, use_bias=not self.cfg.hidden_bn)(x)
            if self.cfg.hidden_bn:
                x = bn()(x)
            x = nn.relu(x)
        x = nn.Dense(self.cfg.out, use_bias=not self.cfg.out_bn)(x)
        if self.cfg.out_bn:
            x = bn(use_scale_bias=False)(x)
        return x


class TwoViewNet(nn.Module):
    """Backbone + projector (+ predictor) + online linear probe on the frozen embedding."""

    backbone: nn.Module
    projector: HeadConfig
    predictor: HeadConfig | None
    num_classes: int

    def setup(self):
        self.proj = MLPHead(self.projector)
        self.pred = MLPHead(self.predictor) if self.predictor is not None else None
        self.probe = nn.Dense(self.num_classes)

    def __call__(self, x: jax.Array, train: bool) -> dict[str, jax.Array]:
        """``embedding``, ``projection``, ``prediction`` (or projection), ``probe_logits``."""
        _, emb = self.backbone(x, train=train)
        z = self.proj(emb, train)
        p = self.pred(z, train) if self.pred is not None else z
        logits = self.probe(jax.lax.stop_gradient(emb))
        return {"embedding": emb, "projection": z, "prediction": p, "probe_logits": logits}

    def project(self, x: jax.Array, train: bool) -> jax.Array:
        """Backbone and projector only (a BYOL target network needs no more)."""
        _, emb = self.backbone(x, train=train)
        return self.proj(emb, train)

    def embed(self, x: jax.Array) -> jax.Array:
        """The representation: the backbone's pooled embedding, in eval mode."""
        return self.backbone(x, train=False)[1]

    def probe_logits(self, x: jax.Array) -> jax.Array:
        """The online probe's logits (eval mode)."""
        return self.probe(self.embed(x))


def backbone_only(model: nn.Module) -> nn.Module:
    """The same architecture without its classifier (``num_classes=0``)."""
    if not hasattr(model, "num_classes"):
        raise JaxdivError(f"model {type(model).__name__} has no num_classes field to drop")
    return model.clone(num_classes=0)


def split_views(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Split a ``[2B, ...]`` array computed on ``concat(view1, view2)`` into its two views."""
    half = x.shape[0] // 2
    return x[:half], x[half:]
