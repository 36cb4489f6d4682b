"""ImageNet MLP-Mixer-S/16 (Architecture variant of the base): 18.5M parameters.

Run:
    python -m jaxdiv train --config=configs/imagenet/mixer_s16.py --workdir=runs/in/mixer_s16
    python -m jaxdiv train --config=configs/imagenet/mixer_s16.py --dry_run

Recipe: the ViT-S/16 one (AdamW lr 1e-3, weight decay 0.1, batch 1024, ~8 warm-up epochs,
cosine, RandAugment 2/10, 90 epochs, bfloat16).
Expected run time: 23.0 GFLOP per image x 90 epochs = 2.6 EFLOP, about 7 TPU v4
chip-hours or 6 A100-hours at 40% utilisation (docs/scaling.md).
Expected result: below ViT-S/16 at this budget (Mixers
need more data or regularisation on ImageNet-1k), roughly 70% top-1; not run here.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from configs.imagenet.common import supervised_base, transformer_optimizer  # noqa: E402


def get_config():
    c = supervised_base("mixer_s16")
    c.model.name = "mixer_s16"
    c.optimizer = transformer_optimizer(lr=1e-3, wd=0.1, warmup=8.0)
    c.data.randaugment.magnitude = 10
    return c
