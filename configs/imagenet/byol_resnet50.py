"""ImageNet BYOL ResNet-50 with an offline linear probe (Framework variant of the base).

Run (pre-train, then fit the probe and write its predictions into the store):
    python -m jaxdiv train --config=configs/imagenet/byol_resnet50.py --workdir=runs/in/byol
    python -m jaxdiv predict --workdir=runs/in/byol
    python -m jaxdiv train --config=configs/imagenet/byol_resnet50.py --dry_run

Recipe (BYOL, Grill et al. 2020, at batch 1024): projector and predictor 4096 -> 256, EMA
target with tau rising from 0.99 to 1 (cosine), asymmetric views (blur always on view 1 and
with probability 0.1 on view 2, solarisation 0.2 on view 2 only), 100 epochs; SGD with
momentum at BYOL's learning rate 0.2 x batch / 256 = 0.8 and weight decay 1.5e-6 (no LARS
in jaxdiv), 10 warm-up epochs, cosine.
Expected run time: 64.7 GFLOP per image (two views and the target) x 100 epochs = 8.2
EFLOP, about 33 TPU v4 chip-hours or 29 A100-hours at 25% utilisation (docs/scaling.md).
Expected result: a linear probe around 62-66% (BYOL
reports 66.5% at 100 epochs with LARS and batch 4096); not run here.
"""

import sys
from pathlib import Path

import ml_collections

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from configs.imagenet.common import ssl_base  # noqa: E402


def get_config():
    c = ssl_base("byol_resnet50", "byol")
    c.method.base_tau = 0.99
    c.method.projector = ml_collections.ConfigDict({"hidden": (4096,), "out": 256})
    c.method.predictor = ml_collections.ConfigDict({"hidden": (4096,), "out": 256})
    c.data.view1 = ml_collections.ConfigDict({"blur_p": 1.0, "solarize_p": 0.0})
    c.data.view2 = ml_collections.ConfigDict({"blur_p": 0.1, "solarize_p": 0.2})
    c.optimizer = ml_collections.ConfigDict(
        {
            "name": "sgd",
            "learning_rate": 0.8,
            "momentum": 0.9,
            "nesterov": False,
            "weight_decay": 1.5e-6,
            "warmup_epochs": 10.0,
            "schedule": "cosine",
        }
    )
    c.num_epochs = 100.0
    # The EMA schedule needs the run length when the method is built; giving it as steps
    # (100 epochs x 1,238 steps of 1024 of the 1,268,355 images) avoids reading the split.
    c.num_steps = 100 * (1_268_355 // 1024)
    return c
