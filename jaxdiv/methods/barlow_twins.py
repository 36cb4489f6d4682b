"""Barlow Twins (Zbontar et al. 2021): drive the cross-correlation of the two views'
projections (standardised over the global batch) towards the identity."""

from __future__ import annotations

import dataclasses

import ml_collections

from jaxdiv.errors import JaxdivError
from jaxdiv.methods import losses
from jaxdiv.methods.heads import HeadConfig, split_views
from jaxdiv.methods.two_view import TwoViewMethod, check_batch_size, common_fields

PROJECTOR = HeadConfig(hidden=(1024, 1024), out=1024)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BarlowTwins(TwoViewMethod):
    """``loss_scale * (sum (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2)``."""

    lambd: float = 5e-3
    loss_scale: float = 1.0
    name: str = "barlow_twins"

    def objective(self, params, variables, out, x, labels, rng, step):
        z1, z2 = split_views(out["projection"])
        return self.loss_scale * losses.barlow_twins_loss(z1, z2, self.lambd), {}, {}


def build(config: ml_collections.ConfigDict, model, num_classes: int) -> BarlowTwins:
    check_batch_size(
        config,
        "barlow_twins",
        2,
        "the cross-correlation standardises each dimension over the batch",
    )
    lambd = float(config.method.get("lambd", 5e-3))
    scale = float(config.method.get("loss_scale", 1.0))
    if lambd < 0 or scale <= 0:
        raise JaxdivError(
            f"method 'barlow_twins': need lambd >= 0 and loss_scale > 0, got {lambd} and {scale}"
        )
    fields = common_fields(
        config, model, num_classes, "barlow_twins", projector=PROJECTOR, predictor=None
    )
    return BarlowTwins(**fields, lambd=lambd, loss_scale=scale)
