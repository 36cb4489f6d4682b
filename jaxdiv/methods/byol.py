"""BYOL (Grill et al. 2020): predict an EMA target network's projection of the other view.

The target (backbone + projector) lives in the ``target`` variable collection: it receives no
gradients, runs in train mode on the same two-view batch (its own batch-norm statistics), and
after every optimiser step moves towards the online weights with decay
``tau = byol_tau(step, total_steps, base_tau)``, rising from ``base_tau`` to 1 (cosine).
"""

from __future__ import annotations

import dataclasses

import jax
import ml_collections

from jaxdiv.errors import JaxdivError
from jaxdiv.methods import losses
from jaxdiv.methods.heads import HeadConfig, TwoViewNet, split_views
from jaxdiv.methods.two_view import TwoViewMethod, check_batch_size, common_fields

PROJECTOR = HeadConfig(hidden=(1024,), out=256)
PREDICTOR = HeadConfig(hidden=(1024,), out=256)
_TARGET_MODULES = ("backbone", "proj")  # the online submodules the target mirrors


def _target_part(tree: dict) -> dict:
    return {k: tree[k] for k in _TARGET_MODULES if k in tree}


@dataclasses.dataclass(frozen=True, kw_only=True)
class BYOL(TwoViewMethod):
    """Online network with a predictor regressing the EMA target's projections."""

    total_steps: int
    base_tau: float = 0.996
    name: str = "byol"

    def init(self, rng, images):
        variables = super().init(rng, images)
        variables["target"] = {
            col: jax.tree.map(lambda a: a.copy(), _target_part(variables[col]))
            for col in ("params", "batch_stats")
            if col in variables
        }
        return variables

    def objective(self, params, variables, out, x, labels, rng, step):
        target = variables["target"]
        mutable = [c for c in ("batch_stats",) if c in target]
        t, updates = self.net.apply(
            target, x, train=True, method=TwoViewNet.project, mutable=mutable
        )
        t1, t2 = split_views(jax.lax.stop_gradient(t))
        p1, p2 = split_views(out["prediction"])
        loss = losses.byol_loss(p1, p2, t1, t2)
        tau = losses.byol_tau(step, self.total_steps, self.base_tau)
        return loss, {"target": {**target, **updates}}, {"target_decay": tau}

    def after_update(self, params, variables, step):
        tau = losses.byol_tau(step, self.total_steps, self.base_tau)
        target = dict(variables["target"])
        target["params"] = losses.ema_update(target["params"], _target_part(params), tau)
        return {**variables, "target": target}


def build(
    config: ml_collections.ConfigDict, model, num_classes: int, *, total_steps: int | None
) -> BYOL:
    """BYOL whose EMA schedule spans ``total_steps``, the run's length (from the trainer)."""
    if total_steps is None or int(total_steps) < 1:
        raise JaxdivError(
            "method 'byol' needs the run's step count for its EMA schedule; build it through "
            "the trainer (build_setup), or pass total_steps= to build_method"
        )
    check_batch_size(config, "byol", 2, "its projector and predictor use batch norm")
    base_tau = float(config.method.get("base_tau", 0.996))
    if not 0 <= base_tau <= 1:
        raise JaxdivError(f"method 'byol': base_tau must be in [0, 1], got {base_tau}")
    fields = common_fields(
        config,
        model,
        num_classes,
        "byol",
        projector=PROJECTOR,
        predictor=PREDICTOR,
        predictor_required=True,
    )
    return BYOL(**fields, total_steps=int(total_steps), base_tau=base_tau)
