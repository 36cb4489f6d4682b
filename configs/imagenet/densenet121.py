"""ImageNet DenseNet-121 (Architecture variant of the base): 7,978,856 parameters.

Run:
    python -m jaxdiv train --config=configs/imagenet/densenet121.py --workdir=runs/in/densenet121
    python -m jaxdiv train --config=configs/imagenet/densenet121.py --dry_run

Recipe: the base's (SGD-Nesterov lr 0.4, batch 1024, wd 1e-4, 5 warm-up epochs, cosine,
RandAugment 2/9, 90 epochs, bfloat16).
Expected run time: 17.1 GFLOP per image x 90 epochs = 2.0 EFLOP, about 8 TPU v4
chip-hours or 7 A100-hours at 25% utilisation (docs/scaling.md).
Expected result: about 75% top-1 (torchvision's
DenseNet-121 reaches 74.4% with a plainer recipe); not run here.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from configs.imagenet.common import supervised_base  # noqa: E402


def get_config():
    c = supervised_base("densenet121")
    c.model.name = "densenet121"
    return c
