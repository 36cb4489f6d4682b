"""Quick-start population study: 9 small CIFAR-10 members spanning all five categories.

Run:
    python -m jaxdiv study --config=configs/quickstart.py --workdir=runs/quickstart

Expected run time: 10.5 minutes on an idle 2-core CPU machine (measured 2026-12-01, no GPU:
10 min 35 s wall for the whole study, report included, of which 7.3 min is training; peak RSS
2.2 GB), plus the install of the README command. (8.2 minutes was measured on 2026-11-25 on
another machine of the same kind.) A second run finds everything finished and only
re-analyses.

Members (base: supervised ResNet-8 on train[:22500], the first half of the training split):
    Reinit           seed1, seed2
    Hyperparameters  lr0.2 (learning rate 0.2 instead of 0.1), smooth (label smoothing 0.1,
                     weight decay 1e-3)
    Architecture     cnn (a plain 3-block CNN), vit (a 4-layer ViT, patch 4)
    Framework        simclr (SimCLR pre-training + offline linear probe, same backbone)
    Dataset          other_half (the base recipe on train[22500:45000], data the base never
                     saw: the CIFAR-scale stand-in for the paper's different pre-training data)

Every member is an independent run (variations get their own seeds; see
jaxdiv.population.spec). Measured result (the run above; 1 epoch on 22,500 images, base
43.1% test accuracy, members 33-46%), mean over each category's members of the pair with
the base, on test (ensembles temperature-scaled on validation):

    category         error inconsistency   relative ensemble gain   conversion rate
    Reinit                 0.179                  0.011                  0.539
    Hyperparameters        0.184                  0.013                  0.556
    Architecture           0.269                  0.033                  0.597
    Framework              0.284                  0.032                  0.584
    Dataset                0.176                  0.013                  0.556

Gain against error inconsistency over the 8 base pairs: slope 0.23, r = 0.98. The paper's
ordering holds for Reinit < Hyperparameters < Architecture < Framework in error
inconsistency (Architecture and Framework swap in gain), but not for Dataset: the other half
of CIFAR-10 is the same distribution, a weak stand-in for the paper's different large-scale
pre-training data, so its member stays as close to the base as a re-seeded one.
"""

import ml_collections

from configs import cifar10_supervised, ssl_common


def base_config() -> ml_collections.ConfigDict:
    c = cifar10_supervised.get_config()
    c.name = "base"
    c.data.train_split = "train[:22500]"
    c.data.eval_split = ""  # the study predicts validation and test itself
    c.model.name = "resnet"
    c.model.kwargs = ml_collections.ConfigDict({"depth": 8, "width": 1})
    c.optimizer.learning_rate = 0.1
    c.optimizer.warmup_epochs = 0.2
    c.batch_size = 128
    c.num_epochs = 1.0
    c.checkpoint_every_steps = 50
    c.log_every_steps = 25
    c.eval_every_steps = 0
    return c


def get_config() -> ml_collections.ConfigDict:
    pop = ml_collections.ConfigDict()
    pop.name = "quickstart"
    pop.seed = 0
    pop.base = base_config()
    pop.splits = ["validation", "test"]
    pop.analysis = ml_collections.ConfigDict(
        {"split": "test", "calibration_split": "validation", "bootstrap": 100}
    )
    pop.report = True
    # Representation stage (probes on embeddings, CKA), kept light for 2 CPU cores.
    pop.represent = ml_collections.ConfigDict({"n_seeds": 1, "c_grid": (0.1, 1.0), "max_iter": 100})
    pop.variations = [
        {"sweep": {"seed": [1, 2]}},
        {"name": "lr0.2", "overrides": {"optimizer.learning_rate": 0.2}},
        {
            "name": "smooth",
            "overrides": {"method.label_smoothing": 0.1, "optimizer.weight_decay": 1e-3},
        },
        {"name": "cnn", "overrides": {"model.name": "cnn", "model.kwargs": {"width": 1}}},
        {
            "name": "vit",
            "overrides": {
                "model.name": "vit_tiny",
                "model.kwargs": {"dim": 96, "depth": 4, "heads": 3},
                "optimizer": {
                    "name": "adamw",
                    "learning_rate": 2e-3,
                    "weight_decay": 0.05,
                    "warmup_epochs": 0.3,
                    "schedule": "cosine",
                },
            },
        },
        {
            "name": "simclr",
            "overrides": {
                "method": {
                    "name": "simclr",
                    "temperature": 0.5,
                    "projector": {"hidden": (256,), "out": 64},
                },
                "data.views": {**ssl_common.SIMCLR_VIEWS, "crop_scale": (0.2, 1.0)},
                "optimizer.learning_rate": 0.3,
                "optimizer.weight_decay": 1e-5,
            },
        },
        {"name": "other_half", "overrides": {"data.train_split": "train[22500:45000]"}},
    ]
    return pop
