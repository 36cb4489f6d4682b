"""ImageNet supervised ResNet-50 with RandAugment: the base model and its Reinit,
Hyperparameter and Dataset variants (the paper's population, ICLR 2022, section 3).

Run (one TPU v4-32 slice / 4 hosts, or 8+ GPUs; see launch/README.md):
    python -m jaxdiv train --config=configs/imagenet/resnet50.py --workdir=runs/in/base
    python -m jaxdiv train --config=configs/imagenet/resnet50.py:seed1 --workdir=runs/in/seed1
Check it compiles on a laptop (no data, simulated 8-device mesh):
    python -m jaxdiv train --config=configs/imagenet/resnet50.py --dry_run

Variants (``:name``):
    (none)          base: SGD-Nesterov lr 0.4, batch 1024, wd 1e-4, RandAugment 2/9, 90 epochs
    seed1, seed2    Reinit: another initialisation and data order
    lr0.8, lr0.2    Hyperparameters: learning rate x2 / x0.5
    wd5e-5          Hyperparameters: half the weight decay
    smooth0.1       Hyperparameters: label smoothing 0.1
    ra3-10          Hyperparameters: stronger RandAugment, 3 layers at magnitude 10 (the
                    top of the paper's 0-10 scale)
    noaug           Hyperparameters: no RandAugment (Inception crop and flip only)
    half_a, half_b  Dataset: the base recipe on either half of the training images (disjoint
                    data; the ImageNet-scale stand-in for a different pre-training set)

Expected run time: 23.9 GFLOP per training image (the dry run's XLA count) x 90 epochs =
2.7 EFLOP per member, about 11 TPU v4 chip-hours or 10 A100-hours at 25% utilisation; half_a
and half_b half that (docs/scaling.md). Not run here: no accelerator was available.
Expected result: the base should reach about 77-78% top-1 on the official validation set
(RandAugment paper: 77.6% for ResNet-50, N=2, M=9); seeds within ~0.2%.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from configs.imagenet.common import data_config, supervised_base  # noqa: E402

VARIANTS = (
    "",
    "seed1",
    "seed2",
    "lr0.8",
    "lr0.2",
    "wd5e-5",
    "smooth0.1",
    "ra3-10",
    "noaug",
    "half_a",
    "half_b",
)


def get_config(variant: str = ""):
    c = supervised_base("resnet50_ra" + (f"_{variant}" if variant else ""))
    if variant in ("seed1", "seed2"):
        c.seed = int(variant[-1])
    elif variant == "lr0.8":
        c.optimizer.learning_rate = 0.8
    elif variant == "lr0.2":
        c.optimizer.learning_rate = 0.2
    elif variant == "wd5e-5":
        c.optimizer.weight_decay = 5e-5
    elif variant == "smooth0.1":
        c.method.label_smoothing = 0.1
    elif variant == "ra3-10":
        c.data.randaugment.num_layers = 3
        c.data.randaugment.magnitude = 10
    elif variant == "noaug":
        c.data = data_config(randaugment=None)
    elif variant == "half_a":
        c.data = data_config(train_split="train[:49.5%]", num_train=634_178)
    elif variant == "half_b":
        c.data = data_config(train_split="train[49.5%:99%]", num_train=634_177)
    elif variant:
        raise ValueError(
            f"unknown variant {variant!r}; valid variants: " + ", ".join(v for v in VARIANTS if v)
        )
    return c
