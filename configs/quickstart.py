"""Quick-start population study: 9 small CIFAR-10 members spanning all five categories.

Run:
    python -m jaxdiv study --config=configs/quickstart.py --workdir=runs/quickstart

Expected run time: 9.4 minutes on an idle 2-core CPU machine (measured 2026-12-02, no GPU:
9 min 26 s wall for the whole study, report included, with an empty data cache, so CIFAR-10
decoding and the 22,500 dead-leaves images are included; peak RSS 2.7 GB), plus the install.
Training and prediction are about 8 of them (training seconds per member: base 42, seed1 37,
seed2 41, lr0.2 38, smooth 37, cnn 34, vit 50, simclr 33, dead_leaves 32), analysis 0.3,
representations 0.9. The previous version took 12.7 minutes on the same machine; the time
came from (each measured alone on that machine): the cnn at 16/32/64 channels instead of
32/64/128 (training 70 s -> 30 s, test 44.4% -> 49.2%); the ViT at width 64 with 2 heads
instead of 96 with 3 (77 s -> 43 s, 32.4% -> 30.5%); SimCLR pre-training on 20x20 views
(82 s -> 32 s, probe 44.0% -> 47.0%; 24x24 gave 46 s and 45.6%, 16x16 23 s and 44.9%) and
the same for dead leaves (86 s -> 37 s, 39.8% -> 40.5%); predicting in batches of 250 (the
ViT's validation and test: 29 s at 500, 21 s at 128); and 7 compression sizes instead of 17
(34 s -> 18 s). A second run finds everything finished and only re-analyses.

On a slower idle 2-core machine (AMD EPYC, AVX2, no AVX-512; measured 2026-12-06, where the
PyTorch ResNet-20 reference of benchmarks/train_throughput.py runs at 202 img/s against 529
on 2026-11-25's machine) the same command took 13.8 minutes from an empty data cache (peak
RSS 2.7 GB; training seconds: base 58, seed1 56, seed2 47, lr0.2 64, smooth 50, cnn 42, vit
65, simclr 44, dead_leaves 47; analysis, representations and report 2.3 minutes), and 12.1
minutes in a second run from a fresh clone with identical results. XLA compiles for the host
CPU, so members there differ by about a point (base 43.0%, members 30.5-47.9%); that run's
per-category results are the quick-start column of docs/results.md.

Members (base: supervised ResNet-8 on train[:22500], the first half of the training split):
    Reinit           seed1, seed2
    Hyperparameters  lr0.2 (learning rate 0.2 instead of 0.1), smooth (label smoothing 0.1,
                     weight decay 1e-3)
    Architecture     cnn (a plain 3-block CNN, 16/32/64 channels), vit (a 4-layer ViT of
                     width 64, patch 4)
    Framework        simclr (SimCLR pre-training on 20x20 views + offline linear probe on
                     32x32 images, same backbone)
    Dataset          dead_leaves (SimCLR pre-training on 22,500 procedural dead-leaves images,
                     jaxdiv/data/procedural, no download; offline linear probe on CIFAR-10)

Every member is an independent run (variations get their own seeds; see
jaxdiv.population.spec). Measured result (1 epoch of 22,500 images each; base 44.1% test
accuracy, members 30.5-49.2%), mean over each category's pairs with the base, on test
(ensembles temperature-scaled on validation), with 95% bootstrap intervals (100 resamples of
the examples, and of the members where a category has two):

    category         error inconsistency    relative ensemble gain   conversion rate
    Reinit           0.186 [0.171, 0.199]   0.009 [0.005, 0.014]     0.537 [0.517, 0.563]
    Hyperparameters  0.192 [0.179, 0.205]   0.013 [0.010, 0.017]     0.559 [0.540, 0.581]
    Architecture     0.282 [0.248, 0.314]   0.041 [0.028, 0.054]     0.626 [0.590, 0.658]
    Framework        0.290 [0.282, 0.299]   0.033 [0.029, 0.038]     0.588 [0.578, 0.605]
    Dataset          0.289 [0.282, 0.298]   0.039 [0.035, 0.045]     0.609 [0.594, 0.626]

Gain against error inconsistency over the 8 base pairs: slope 0.283 [0.238, 0.329], r =
0.97. The paper's ordering holds from {Reinit, Hyperparameters} to {Architecture, Framework,
Dataset}: the paired bootstrap puts every one of the last three above Reinit and
Hyperparameters (e.g. Framework - Hyperparameters 0.098 [0.085, 0.114]), but cannot order
them (Framework - Architecture 0.008 [-0.023, 0.039], Dataset - Framework -0.001 [-0.009,
0.008]); Hyperparameters and Reinit are level (0.007 [-0.012, 0.021]).

Shift (test[:2000], severity 3; clean = all of test): accuracy of the base 44.1% clean
(44.0% on those 2,000), 41.1% gaussian noise, 37.4% defocus blur, 24.6% fog; mean EI with the
base by category (clean / noise / blur / fog): Reinit 0.186 / 0.164 / 0.199 / 0.175,
Hyperparameters 0.192 / 0.178 / 0.198 / 0.174, Architecture 0.282 / 0.282 / 0.269 / 0.200,
Framework 0.290 / 0.252 / 0.297 / 0.253, Dataset 0.289 / 0.248 / 0.290 / 0.230. Ensemble
gains shrink under fog for every category (Dataset 0.039 -> 0.012, Framework 0.033 ->
0.002). Agreement is on the line (probit slopes 0.88-1.13, r >= 0.90); accuracy is for noise
(slope 1.00, r = 0.93), not for blur (0.66, r = 0.82) or fog (0.30, r = 0.62) at this scale.
"""

import ml_collections

from configs import cifar10_supervised, ssl_common

# SimCLR's views, cropped from at least a fifth of the image and resampled to 20x20: the
# backbone is fully convolutional, so it pre-trains on 20x20 crops (0.39x the pixels) and is
# probed on whole 32x32 images.
QUICK_VIEWS = {**ssl_common.SIMCLR_VIEWS, "crop_scale": (0.2, 1.0), "out_size": 20}


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
    c.eval_batch_size = 250  # divides every predicted split: no padded batches
    return c


def get_config() -> ml_collections.ConfigDict:
    pop = ml_collections.ConfigDict()
    pop.name = "quickstart"
    pop.seed = 0
    pop.base = base_config()
    pop.splits = ["validation", "test"]
    # distribution shift: one noise, one blur and one weather corruption at severity 3 of the
    # first 2,000 test images (CIFAR-10-C, generated on device), with the clean temperatures
    pop.shift_splits = [f"test[:2000]:{c}:3" for c in ("gaussian_noise", "defocus_blur", "fog")]
    pop.analysis = ml_collections.ConfigDict(
        {"split": "test", "calibration_split": "validation", "bootstrap": 100}
    )
    pop.report = True
    # Representation stage (probes on embeddings, CKA), kept light for 2 CPU cores.
    pop.represent = ml_collections.ConfigDict(
        {
            "n_seeds": 1,
            "c_grid": (0.1, 1.0),
            "max_iter": 100,
            "keep": (4, 8, 16, 32, 64, 128, 256),
        }
    )
    pop.variations = [
        {"sweep": {"seed": [1, 2]}},
        {"name": "lr0.2", "overrides": {"optimizer.learning_rate": 0.2}},
        {
            "name": "smooth",
            "overrides": {"method.label_smoothing": 0.1, "optimizer.weight_decay": 1e-3},
        },
        {
            "name": "cnn",
            "overrides": {
                "model.name": "cnn",
                "model.kwargs": {"width": 1, "channels": (16, 32, 64)},
            },
        },
        {
            "name": "vit",
            "overrides": {
                "model.name": "vit_tiny",
                "model.kwargs": {"dim": 64, "depth": 4, "heads": 2},
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
                "data.views": QUICK_VIEWS,
                "optimizer.learning_rate": 0.3,
                "optimizer.weight_decay": 1e-5,
            },
        },
        {
            # pre-trained on procedural images (no download; jaxdiv/data/procedural), then the
            # offline linear probe on CIFAR-10: the Dataset category's different training data
            "name": "dead_leaves",
            "overrides": {
                "data.train_split": "procedural:dead_leaves[:22500]",
                "method": {
                    "name": "simclr",
                    "temperature": 0.5,
                    "projector": {"hidden": (256,), "out": 64},
                },
                "data.views": QUICK_VIEWS,
                "optimizer": {
                    "name": "adamw",
                    "learning_rate": 2e-3,
                    "weight_decay": 1e-4,
                    "warmup_epochs": 0.2,
                    "schedule": "cosine",
                },
                "probe": {"fit_split": "train[:22500]", "val_split": "validation"},
            },
        },
    ]
    return pop
