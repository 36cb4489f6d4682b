"""The paper's population study at a scale 2 CPU cores finish: 16 CIFAR-10 members, all five
categories with at least two members each.

Run:
    python -m jaxdiv study --config=configs/cifar10_cpu_study.py --workdir=runs/cpu_study

Measured on an idle 2-core CPU machine (no GPU), 2026-12-02: 78.8 minutes for the whole
study (wall 1:18:54, report included; peak RSS 4.4 GB), from a cold data cache except
CIFAR-10's training split. Training seconds: leaves_sup (pre-training) 86; base 226, seed1
210, seed2 232, seed3 230, lr0.05 261, smooth 256, batch256 253, resnet8 333, vit 363,
cnn_flat 257, simclr 162, byol 191, simsiam 180, leaves_simclr 159, spectral_simclr 141,
leaves_finetuned 228; the rest is prediction on 5 splits, probes, analysis and
representations.

Measured result (test accuracy; 95% bootstrap intervals from 200 resamples of the test
examples and of each category's members): base 70.8%; Reinit 68.7-70.1%, Hyperparameters
68.8-70.0%, Architecture cnn_flat 72.8% / resnet8 66.5% / vit 49.1%, Framework probes simclr
50.5% / byol 47.8% / simsiam 47.6% (the same cnn at initialisation: 40.4%), Dataset
leaves_simclr 45.3% / spectral_simclr 45.5% / leaves_finetuned 68.8%. Mean over each
category's pairs with the base:
    category         error inconsistency    relative ensemble gain   conversion rate
    Reinit           0.141 [0.132, 0.151]   0.015 [0.012, 0.019]     0.593 [0.568, 0.625]
    Hyperparameters  0.142 [0.135, 0.149]   0.015 [0.011, 0.019]     0.595 [0.570, 0.615]
    Architecture     0.221 [0.152, 0.344]   0.047 [0.017, 0.098]     0.669 [0.596, 0.770]
    Framework        0.344 [0.332, 0.356]   0.100 [0.095, 0.107]     0.779 [0.768, 0.792]
    Dataset          0.299 [0.148, 0.379]   0.083 [0.016, 0.121]     0.731 [0.602, 0.807]
Gain against EI over the 15 base pairs: slope 0.430 [0.408, 0.452], r = 0.997. Paired
differences of mean EI: Architecture - Reinit 0.080 [0.009, 0.209], Framework -
Architecture 0.123 [0.002, 0.198], Dataset - Framework -0.045 [-0.195, 0.039]; Reinit and
Hyperparameters are level (0.001 [-0.009, 0.010]). docs/results.md discusses every
experiment.

Base: a 3-block CNN (16/32/64 channels, global average pooling, so the self-supervised
members pre-train on 20x20 crops and are probed on whole images), 3 epochs of train[:45000]
(1,055 steps of batch 128, SGD 0.1 Nesterov, cosine). Of the candidates measured at this
budget on an idle 2-core machine (test accuracy, training seconds) it is the fastest per
accuracy point but one: cnn flattening 72.7% in 176 s, this cnn 70.8% in 179 s, ResNet-8
65.5% in 223 s; the flattening cnn takes only 32x32 images, so it is an Architecture member.

Members:
    Reinit           seed1, seed2, seed3
    Hyperparameters  lr0.05 (half the learning rate), smooth (label smoothing 0.1, weight
                     decay 1e-3), batch256 (batch 256 at learning rate 0.2)
    Architecture     resnet8, vit (4 layers of width 64, patch 4, AdamW), cnn_flat (the base
                     network with a flattening head)
    Framework        simclr, byol, simsiam: 2 epochs of train[:45000] on 20x20 views, AdamW,
                     offline linear probe fitted on train[:45000] (BYOL and SimSiam with the
                     predictor at 10x the learning rate; BYOL's target decay from 0.9)
    Dataset          leaves_simclr, spectral_simclr: SimCLR on 45,000 procedural dead-leaves /
                     1/f-noise images, probed on CIFAR-10; leaves_finetuned: supervised
                     pre-training on the dead leaves' 8 pseudo-classes (pretrain run
                     leaves_sup, 1 epoch), then the base's recipe from that backbone
"""

import ml_collections

from configs import cifar10_supervised, ssl_common

CNN = {"width": 1, "channels": (16, 32, 64), "pool": "mean"}
VIEWS = {**ssl_common.SIMCLR_VIEWS, "crop_scale": (0.2, 1.0), "out_size": 20}
PROBE = {"fit_split": "train[:45000]", "val_split": "validation"}


def base_config() -> ml_collections.ConfigDict:
    c = cifar10_supervised.get_config()
    c.name = "base"
    c.data.train_split = "train[:45000]"
    c.data.eval_split = ""  # the study predicts validation and test itself
    c.model.name = "cnn"
    c.model.kwargs = ml_collections.ConfigDict(CNN)
    c.optimizer.learning_rate = 0.1
    c.optimizer.warmup_epochs = 0.2
    c.batch_size = 128
    c.num_epochs = 3.0
    c.checkpoint_every_steps = 200
    c.log_every_steps = 50
    c.eval_every_steps = 0
    c.eval_batch_size = 250  # divides every predicted split: no padded batches
    return c


def _adamw(learning_rate: float, weight_decay: float, **extra) -> dict:
    return {
        "name": "adamw",
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "warmup_epochs": 0.2,
        "schedule": "cosine",
        **extra,
    }


def _ssl(method: dict, optimizer: dict, train_split: str | None = None) -> dict:
    """A two-view member: 2 epochs on 20x20 views, probed on CIFAR-10's train[:45000]."""
    out = {
        "method": method,
        "data.views": VIEWS,
        "optimizer": optimizer,
        "num_epochs": 2.0,
        "probe": PROBE,
    }
    if train_split:
        out["data.train_split"] = train_split
    return out


SIMCLR = {"name": "simclr", "temperature": 0.5, "projector": {"hidden": (256,), "out": 64}}


def get_config() -> ml_collections.ConfigDict:
    pop = ml_collections.ConfigDict()
    pop.name = "cpu_study"
    pop.seed = 0
    pop.base = base_config()
    pop.splits = ["validation", "test"]
    pop.shift_splits = [f"test[:2000]:{c}:3" for c in ("gaussian_noise", "defocus_blur", "fog")]
    pop.analysis = ml_collections.ConfigDict(
        {"split": "test", "calibration_split": "validation", "bootstrap": 200}
    )
    pop.report = True
    pop.represent = ml_collections.ConfigDict(
        {
            "n_seeds": 1,
            "c_grid": (0.1, 1.0),
            "max_iter": 100,
            "keep": (4, 8, 16, 32, 64),
        }
    )
    # Trained first, never predicted: the fine-tuned Dataset member's pre-training.
    pop.pretrain = [
        {
            "name": "leaves_sup",
            "overrides": {
                "data.train_split": "procedural:dead_leaves[:45000]",
                "num_epochs": 1.0,
            },
        }
    ]
    pop.variations = [
        {"sweep": {"seed": [1, 2, 3]}},
        {"name": "lr0.05", "overrides": {"optimizer.learning_rate": 0.05}},
        {
            "name": "smooth",
            "overrides": {"method.label_smoothing": 0.1, "optimizer.weight_decay": 1e-3},
        },
        {"name": "batch256", "overrides": {"batch_size": 256, "optimizer.learning_rate": 0.2}},
        {
            "name": "resnet8",
            "overrides": {"model.name": "resnet", "model.kwargs": {"depth": 8, "width": 1}},
        },
        {
            "name": "vit",
            "overrides": {
                "model.name": "vit_tiny",
                "model.kwargs": {"dim": 64, "depth": 4, "heads": 2},
                "optimizer": {**_adamw(2e-3, 0.05), "warmup_epochs": 0.3},
            },
        },
        {"name": "cnn_flat", "overrides": {"model.kwargs": {**CNN, "pool": "flatten"}}},
        {"name": "simclr", "overrides": _ssl(SIMCLR, _adamw(2e-3, 1e-4))},
        {
            "name": "byol",
            "overrides": _ssl(
                {
                    "name": "byol",
                    "base_tau": 0.9,
                    "projector": ssl_common.head((512,), 128).to_dict(),
                    "predictor": ssl_common.head((512,), 128).to_dict(),
                },
                _adamw(4e-3, 1e-4, lr_multipliers={"pred": 10.0}),
            ),
        },
        {
            "name": "simsiam",
            "overrides": _ssl(
                {
                    "name": "simsiam",
                    "projector": ssl_common.head((512,), 512, out_bn=True).to_dict(),
                    "predictor": ssl_common.head((128,), 512).to_dict(),
                },
                _adamw(4e-3, 1e-4, lr_multipliers={"pred": 10.0}),
            ),
        },
        {
            "name": "leaves_simclr",
            "overrides": _ssl(SIMCLR, _adamw(2e-3, 1e-4), "procedural:dead_leaves[:45000]"),
        },
        {
            "name": "spectral_simclr",
            "overrides": _ssl(SIMCLR, _adamw(2e-3, 1e-4), "procedural:spectral[:45000]"),
        },
        # the base's recipe from the backbone pre-trained on the dead leaves' pseudo-classes
        {"name": "leaves_finetuned", "overrides": {"finetune_from": "pretrain:leaves_sup"}},
    ]
    return pop
