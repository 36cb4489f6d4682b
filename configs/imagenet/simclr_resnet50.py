"""ImageNet SimCLR ResNet-50 with an offline linear probe (Framework variant of the base).

Run (pre-train, then fit the probe and write its predictions into the store):
    python -m jaxdiv train --config=configs/imagenet/simclr_resnet50.py --workdir=runs/in/simclr
    python -m jaxdiv predict --workdir=runs/in/simclr
    python -m jaxdiv train --config=configs/imagenet/simclr_resnet50.py --dry_run

Recipe (SimCLR, Chen et al. 2020, at batch 1024): NT-Xent at temperature 0.1 over the
global batch's 2 x 1024 views (negatives gathered across devices), projector 2048 -> 128,
colour jitter 0.8/0.8/0.8/0.2, blur on half the views, 100 epochs; SGD with momentum at
SimCLR's learning rate 0.3 x batch / 256 = 1.2 and weight decay 1e-6 (jaxdiv has no LARS, so
this is the closest available optimiser), 10 warm-up epochs, cosine.
Expected run time: 48.5 GFLOP per image (two views) x 100 epochs = 6.1 EFLOP, about 25
TPU v4 chip-hours or 22 A100-hours at 25% utilisation (docs/scaling.md).
Expected result: a linear probe around 60-64% (SimCLR
reports 64.6% at 100 epochs with LARS and batch 4096); not run here.
"""

import sys
from pathlib import Path

import ml_collections

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from configs.imagenet.common import ssl_base  # noqa: E402


def get_config():
    c = ssl_base("simclr_resnet50", "simclr")
    c.method.temperature = 0.1
    c.method.projector = ml_collections.ConfigDict({"hidden": (2048,), "out": 128})
    c.data.views.update(
        {"brightness": 0.8, "contrast": 0.8, "saturation": 0.8, "hue": 0.2, "blur_p": 0.5}
    )
    c.optimizer = ml_collections.ConfigDict(
        {
            "name": "sgd",
            "learning_rate": 1.2,
            "momentum": 0.9,
            "nesterov": False,
            "weight_decay": 1e-6,
            "warmup_epochs": 10.0,
            "schedule": "cosine",
        }
    )
    c.num_epochs = 100.0
    return c
