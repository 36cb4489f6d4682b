"""The CIFAR-10 replication of the paper's population study, sized for one GPU.

Run:
    python -m jaxdiv study --config=configs/cifar10_study.py --workdir=runs/cifar10_study

31 members around a supervised ResNet-20 base trained on train[:22500] (the first half of
the training split; the second half is the Dataset category's data):
    Reinit (6)           seeds 1-6
    Hyperparameters (11) learning rate x0.5 / x2, weight decay 1e-4 / 1e-3, label smoothing 0.1,
                         AdamW, no Nesterov, batch 256, no crop augmentation, 10 warm-up
                         epochs, constant schedule
    Architecture (6)     ResNet-56, ResNet-20 x2 width, WRN-16-4, ViT-tiny, MLP-Mixer, CNN
    Framework (4)        SimCLR, BYOL, SimSiam, Barlow Twins (ResNet-20 backbone, offline
                         linear probe on train[:22500])
    Dataset (3)          ResNet-20, WRN-16-4 and SimCLR trained on train[22500:45000], data the
                         base never saw (the CIFAR-scale stand-in for the paper's different
                         pre-training data)
Every member is an independent run with its own seed (jaxdiv.population.spec).

Expected run time: not measured (no GPU was lent to the session that wrote it). Estimate for
one H100: supervised members ~2-4 min each (60 epochs of 22,500 images), self-supervised
members ~10 min each (200 epochs), about 2.5 hours in all. On 2 CPU cores: days.
Expected result: base test accuracy about 88-90% (ResNet-20, half the training data, 60
epochs); error inconsistency and relative ensemble gain growing from Reinit to Dataset.
"""

import ml_collections

from configs import cifar10_supervised, ssl_common


def base_config() -> ml_collections.ConfigDict:
    c = cifar10_supervised.get_config()
    c.name = "base"
    c.data.train_split = "train[:22500]"
    c.data.eval_split = ""
    c.num_epochs = 60.0
    c.optimizer.warmup_epochs = 2.0
    c.compute_dtype = "bfloat16"
    c.checkpoint_every_steps = 2000
    return c


def _ssl(name: str, **method) -> dict:
    return {
        "method": {"name": name, **method},
        "data.views": ssl_common.SIMCLR_VIEWS,
        "num_epochs": 200.0,
        "batch_size": 512,
        "optimizer": {
            "name": "sgd",
            "learning_rate": 0.5 if name == "simclr" else 0.1,
            "momentum": 0.9,
            "nesterov": False,
            "weight_decay": 5e-4 if name != "simclr" else 1e-6,
            "warmup_epochs": 10.0,
            "schedule": "cosine",
        },
    }


def get_config() -> ml_collections.ConfigDict:
    pop = ml_collections.ConfigDict()
    pop.name = "cifar10_study"
    pop.seed = 0
    pop.base = base_config()
    pop.splits = ["validation", "test"]
    pop.analysis = ml_collections.ConfigDict(
        {"split": "test", "calibration_split": "validation", "bootstrap": 1000}
    )
    pop.report = True
    pop.represent = ml_collections.ConfigDict({"n_seeds": 3})
    other_half = "train[22500:45000]"
    pop.variations = [
        {"sweep": {"seed": [1, 2, 3, 4, 5, 6]}},
        {"name": "lr0.05", "overrides": {"optimizer.learning_rate": 0.05}},
        {"name": "lr0.2", "overrides": {"optimizer.learning_rate": 0.2}},
        {"name": "wd1e-4", "overrides": {"optimizer.weight_decay": 1e-4}},
        {"name": "wd1e-3", "overrides": {"optimizer.weight_decay": 1e-3}},
        {"name": "smooth0.1", "overrides": {"method.label_smoothing": 0.1}},
        {
            "name": "adamw",
            "overrides": {
                "optimizer": {
                    "name": "adamw",
                    "learning_rate": 2e-3,
                    "weight_decay": 0.05,
                    "warmup_epochs": 2.0,
                    "schedule": "cosine",
                }
            },
        },
        {"name": "no_nesterov", "overrides": {"optimizer.nesterov": False}},
        {"name": "batch256", "overrides": {"batch_size": 256, "optimizer.learning_rate": 0.2}},
        {"name": "no_crop", "overrides": {"data.crop_padding": 0}},
        {"name": "warmup10", "overrides": {"optimizer.warmup_epochs": 10.0}},
        {
            "name": "constant_lr",
            "overrides": {"optimizer.schedule": "constant", "optimizer.learning_rate": 0.02},
        },
        {"name": "resnet56", "overrides": {"model.name": "resnet56"}},
        {"name": "resnet20x2", "overrides": {"model.kwargs.width": 2}},
        {"name": "wrn16_4", "overrides": {"model.name": "wrn16_4", "model.kwargs": {}}},
        {
            "name": "vit_tiny",
            "overrides": {
                "model.name": "vit_tiny",
                "model.kwargs": {"depth": 6},
                "optimizer": {
                    "name": "adamw",
                    "learning_rate": 1e-3,
                    "weight_decay": 0.05,
                    "warmup_epochs": 5.0,
                    "schedule": "cosine",
                },
            },
        },
        {
            "name": "mixer",
            "overrides": {
                "model.name": "mixer_small",
                "model.kwargs": {"depth": 6, "dim": 256, "channel_mlp": 1024},
                "optimizer": {
                    "name": "adamw",
                    "learning_rate": 1e-3,
                    "weight_decay": 0.05,
                    "warmup_epochs": 5.0,
                    "schedule": "cosine",
                },
            },
        },
        {"name": "cnn", "overrides": {"model.name": "cnn", "model.kwargs": {"width": 2}}},
        {"name": "simclr", "overrides": _ssl("simclr", temperature=0.5)},
        {"name": "byol", "overrides": _ssl("byol")},
        {"name": "simsiam", "overrides": _ssl("simsiam")},
        {"name": "barlow_twins", "overrides": _ssl("barlow_twins")},
        {"name": "other_half", "overrides": {"data.train_split": other_half}},
        {
            "name": "other_half_wrn",
            "overrides": {
                "data.train_split": other_half,
                "model.name": "wrn16_4",
                "model.kwargs": {},
            },
        },
        {
            "name": "other_half_simclr",
            "overrides": {**_ssl("simclr", temperature=0.5), "data.train_split": other_half},
        },
    ]
    return pop
