"""SimCLR (Chen et al. 2020) and its supervised variant SupCon (Khosla et al. 2020).

NT-Xent over the 2B projections of a global batch: every other view in the batch is a
negative, across all devices of the mesh (see ``losses.nt_xent``).
"""

from __future__ import annotations

import dataclasses

import ml_collections

from jaxdiv.errors import JaxdivError
from jaxdiv.methods import losses
from jaxdiv.methods.heads import HeadConfig, split_views
from jaxdiv.methods.two_view import TwoViewMethod, check_batch_size, common_fields

PROJECTOR = HeadConfig(hidden=(512,), out=128)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimCLR(TwoViewMethod):
    """NT-Xent at ``temperature``; ``supervised=True`` makes it SupCon (same-label positives)."""

    temperature: float = 0.5
    supervised: bool = False
    name: str = "simclr"

    def objective(self, params, variables, out, x, labels, rng, step):
        z1, z2 = split_views(out["projection"])
        if self.supervised:
            return losses.supcon(z1, z2, labels, self.temperature), {}, {}
        return losses.nt_xent(z1, z2, self.temperature), {}, {}


def build(config: ml_collections.ConfigDict, model, num_classes: int) -> SimCLR:
    return _build(config, model, num_classes, "simclr", supervised=False)


def build_supcon(config: ml_collections.ConfigDict, model, num_classes: int) -> SimCLR:
    return _build(config, model, num_classes, "supcon", supervised=True)


def _build(config, model, num_classes, name, *, supervised):
    check_batch_size(
        config,
        name,
        2,
        "each image is contrasted with the other 2B-2 views of "
        "the batch, so a batch of 1 has no negatives",
    )
    temperature = float(config.method.get("temperature", 0.5))
    if temperature <= 0:
        raise JaxdivError(f"method {name!r}: temperature must be > 0, got {temperature}")
    fields = common_fields(config, model, num_classes, name, projector=PROJECTOR, predictor=None)
    return SimCLR(**fields, temperature=temperature, supervised=supervised)
