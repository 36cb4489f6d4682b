"""SimSiam (Chen & He 2021): predict the other view's projection behind a stop-gradient,
with no negatives and no target network."""

from __future__ import annotations

import dataclasses

import ml_collections

from jaxdiv.methods import losses
from jaxdiv.methods.heads import HeadConfig, split_views
from jaxdiv.methods.two_view import TwoViewMethod, check_batch_size, common_fields

# The CIFAR recipe: a projector ending in (affine-free) BN, a bottleneck predictor.
PROJECTOR = HeadConfig(hidden=(1024, 1024), out=1024, out_bn=True)
PREDICTOR = HeadConfig(hidden=(256,), out=1024)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimSiam(TwoViewMethod):
    """``D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2`` with ``D`` the negative cosine."""

    name: str = "simsiam"

    def objective(self, params, variables, out, x, labels, rng, step):
        z1, z2 = split_views(out["projection"])
        p1, p2 = split_views(out["prediction"])
        return losses.simsiam_loss(p1, p2, z1, z2), {}, {}


def build(config: ml_collections.ConfigDict, model, num_classes: int) -> SimSiam:
    check_batch_size(config, "simsiam", 2, "its projector and predictor use batch norm")
    fields = common_fields(
        config,
        model,
        num_classes,
        "simsiam",
        projector=PROJECTOR,
        predictor=PREDICTOR,
        predictor_required=True,
    )
    return SimSiam(**fields)
