"""Supervised ResNet-20 on CIFAR-10.

Run (full schedule, one GPU):
    python -m jaxdiv train --config=configs/cifar10_supervised.py --workdir=runs/resnet20
    python -m jaxdiv predict --config=configs/cifar10_supervised.py --workdir=runs/resnet20

Run (quick variant, 2 CPU cores):
    python -m jaxdiv train --config=configs/cifar10_supervised.py:quick --workdir=runs/quick

Expected:
- full: 182 epochs of SGD+Nesterov, batch 128, lr 0.1 cosine, wd 5e-4 on kernels; this recipe
  reaches 91-92% test accuracy for ResNet-20 in the literature. Not run here: no GPU was lent
  to the session that wrote it.
- quick: 1 epoch over 45,000 training images at batch 128 (351 steps). Measured on an idle
  2-core CPU machine (no GPU), 2026-11-25: 2.8 minutes wall (159 s of training, about 300
  images/s), 54.2% test / 53.6% validation accuracy. (The earlier 2-epoch version reached
  63.9% test in 9.5 minutes, before jaxdiv moved XLA:CPU's convolutions to Eigen.)

Fine-tuning a pre-trained representation (the backbone of any run, e.g. a SimCLR run; the
classifier head starts fresh):
    python -m jaxdiv train --config=configs/cifar10_supervised.py:quick \
        --config.finetune_from=runs/simclr_quick --config.optimizer.learning_rate=0.02 \
        --workdir=runs/simclr_finetuned

Any key can be overridden, e.g. `--config.optimizer.learning_rate=0.05`.
"""

import ml_collections


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "resnet20"
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.dataset = "cifar10"
    c.data.data_dir = ml_collections.FieldReference(None, field_type=str)
    c.data.train_split = "train[:45000]"
    c.data.eval_split = "validation"  # train[45000:]
    c.data.crop_padding = 4
    c.data.flip = True

    c.model = ml_collections.ConfigDict()
    c.model.name = "resnet20"
    c.model.kwargs = ml_collections.ConfigDict({"width": 1})

    c.method = ml_collections.ConfigDict()
    c.method.name = "supervised"
    c.method.label_smoothing = 0.0

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "sgd"
    c.optimizer.learning_rate = 0.1
    c.optimizer.momentum = 0.9
    c.optimizer.nesterov = True
    c.optimizer.weight_decay = 5e-4
    c.optimizer.warmup_epochs = 1.0
    c.optimizer.schedule = "cosine"

    c.batch_size = 128
    c.num_epochs = 182.0
    c.num_steps = -1  # > 0 overrides num_epochs
    c.compute_dtype = "float32"  # "bfloat16" on GPU/TPU

    c.mesh = ml_collections.ConfigDict({"data": -1})  # -1: all devices

    # A run directory (e.g. a SimCLR run) whose backbone initialises this model: fine-tuning.
    c.finetune_from = ""

    c.checkpoint_every_steps = 1000
    c.keep_checkpoints = 3
    c.log_every_steps = 50
    c.eval_every_steps = 5000
    c.eval_batch_size = 500

    if variant == "quick":
        c.name = "resnet20_quick"
        c.num_epochs = 1.0
        c.optimizer.learning_rate = 0.05
        c.optimizer.warmup_epochs = 0.2
        c.checkpoint_every_steps = 100
        c.eval_every_steps = 175
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; valid variants: quick")
    return c
