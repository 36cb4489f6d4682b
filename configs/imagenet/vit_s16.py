"""ImageNet ViT-S/16 (Architecture variant of the base): 22.0M parameters, mean-pooled tokens.

Run:
    python -m jaxdiv train --config=configs/imagenet/vit_s16.py --workdir=runs/in/vit_s16
    python -m jaxdiv train --config=configs/imagenet/vit_s16.py --dry_run
Variant ``:fsdp`` shards every kernel and its optimiser moments over a 2-way ``fsdp`` axis
(mesh data=4 x fsdp=2 on 8 devices), the layout for models whose state crowds one device.

Recipe (after big_vision's "better plain ViT baselines", without Mixup): AdamW lr 1e-3,
weight decay 0.1 (x lr = 1e-4 decoupled), batch 1024, ~8 warm-up epochs then cosine,
RandAugment 2/10, 90 epochs, bfloat16.
Expected run time: 27.9 GFLOP per image x 90 epochs = 3.2 EFLOP, about 8 TPU v4
chip-hours or 7 A100-hours at 40% utilisation (docs/scaling.md).
Expected result: about 75% top-1 (big_vision reports
76.5% at 90 epochs with Mixup); not run here.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from configs.imagenet.common import supervised_base, transformer_optimizer  # noqa: E402


def get_config(variant: str = ""):
    c = supervised_base("vit_s16")
    c.model.name = "vit_s16"
    c.optimizer = transformer_optimizer(lr=1e-3, wd=0.1, warmup=8.0)
    c.data.randaugment.magnitude = 10
    if variant == "fsdp":
        c.name = "vit_s16_fsdp"
        c.mesh.data = -1
        c.mesh.fsdp = 2
        c.mesh.rules = [("kernel$", "fsdp"), ("pos_embed$", "fsdp")]
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; valid variants: fsdp")
    return c
