"""VICReg (Bardes et al. 2022): invariance between views plus variance and covariance
regularisation of each view's projections over the global batch."""

from __future__ import annotations

import dataclasses

import ml_collections

from jaxdiv.methods import losses
from jaxdiv.methods.heads import HeadConfig, split_views
from jaxdiv.methods.two_view import TwoViewMethod, check_batch_size, common_fields

PROJECTOR = HeadConfig(hidden=(1024, 1024), out=1024)


@dataclasses.dataclass(frozen=True, kw_only=True)
class VICReg(TwoViewMethod):
    """``sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance``."""

    sim_coeff: float = 25.0
    std_coeff: float = 25.0
    cov_coeff: float = 1.0
    name: str = "vicreg"

    def objective(self, params, variables, out, x, labels, rng, step):
        z1, z2 = split_views(out["projection"])
        inv, var, cov = losses.vicreg_terms(z1, z2)
        loss = self.sim_coeff * inv + self.std_coeff * var + self.cov_coeff * cov
        return loss, {}, {"invariance": inv, "variance": var, "covariance": cov}


def build(config: ml_collections.ConfigDict, model, num_classes: int) -> VICReg:
    check_batch_size(config, "vicreg", 2, "variances and covariances are taken over the batch")
    m = config.method
    fields = common_fields(
        config, model, num_classes, "vicreg", projector=PROJECTOR, predictor=None
    )
    return VICReg(
        **fields,
        sim_coeff=float(m.get("sim_coeff", 25.0)),
        std_coeff=float(m.get("std_coeff", 25.0)),
        cov_coeff=float(m.get("cov_coeff", 1.0)),
    )
