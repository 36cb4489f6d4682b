"""Barlow Twins with a ResNet-20 backbone on CIFAR-10, evaluated by an offline linear probe.

Run (full schedule, one GPU):
    python -m jaxdiv train --config=configs/cifar10_barlow_twins.py --workdir=runs/bt
    python -m jaxdiv.methods.probe_eval --workdir=runs/bt --splits=validation,test

Run (quick variant, 2 CPU cores):
    python -m jaxdiv train --config=configs/cifar10_barlow_twins.py:quick --workdir=runs/bt_quick
    python -m jaxdiv.methods.probe_eval --workdir=runs/bt_quick --splits=validation,test

The second command fits the offline probe (multinomial logistic regression on frozen
embeddings of un-augmented images, L2 chosen on `validation`), reports its accuracy and a
kNN accuracy, and writes the probe's logits and the embeddings into WORKDIR/store like any
supervised member's. Training logs `train_online_probe_accuracy`: the ONLINE probe on
augmented views, not comparable with the offline numbers.

Expected:
- full: 800 epochs, batch 512, SGD momentum 0.9 lr 0.3 cosine, 10 warm-up epochs, wd 1e-4,
  lambda 5e-3 (off-diagonal weight), loss scale 0.1, a 3-layer 2048-wide projector. Not
  run here (no GPU was lent to the session that wrote it).
- quick: see QUICK_MEASURED below (measured on a shared 2-core CPU machine).

Any key can be overridden, e.g. `--config.method.lambd=0.01`. `--config.method.name=vicreg`
trains VICReg on the same heads (coefficients `method.sim_coeff`, `std_coeff`, `cov_coeff`).
"""

import ml_collections

QUICK_MEASURED = "not yet measured"


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "barlow_twins_resnet20"
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.dataset = "cifar10"
    c.data.data_dir = ml_collections.FieldReference(None, field_type=str)
    c.data.train_split = "train[:45000]"
    c.data.eval_split = ""  # no classifier during pretraining; see probe_eval
    # Both views (jaxdiv.data.views.ViewConfig fields); data.view1 / data.view2 override.
    c.data.views = ml_collections.ConfigDict({
        "crop_scale": (0.08, 1.0), "flip_p": 0.5, "jitter_p": 0.8, "brightness": 0.4,
        "contrast": 0.4, "saturation": 0.4, "hue": 0.1, "grayscale_p": 0.2, "blur_p": 0.0,
    })

    c.model = ml_collections.ConfigDict()
    c.model.name = "resnet20"
    c.model.kwargs = ml_collections.ConfigDict({"width": 1})

    c.method = ml_collections.ConfigDict()
    c.method.name = "barlow_twins"
    c.method.lambd = 5e-3
    c.method.loss_scale = 0.1
    c.method.projector = ml_collections.ConfigDict(
        {"hidden": (2048, 2048), "out": 2048, "hidden_bn": True, "out_bn": False})

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "sgd"
    c.optimizer.learning_rate = 0.3
    c.optimizer.momentum = 0.9
    c.optimizer.nesterov = False
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_epochs = 10.0
    c.optimizer.schedule = "cosine"

    c.batch_size = 512
    c.num_epochs = 800.0
    c.num_steps = -1  # > 0 overrides num_epochs
    c.compute_dtype = "float32"  # "bfloat16" on GPU/TPU

    c.mesh = ml_collections.ConfigDict({"data": -1})  # -1: all devices

    c.checkpoint_every_steps = 1000
    c.keep_checkpoints = 3
    c.log_every_steps = 50
    c.eval_every_steps = 0
    c.eval_batch_size = 500

    # The offline linear probe and kNN (python -m jaxdiv.methods.probe_eval).
    c.probe = ml_collections.ConfigDict({
        "fit_split": "train[:45000]", "val_split": "validation",
        "l2_grid": (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1), "knn_k": 20, "knn_temperature": 0.07,
    })

    if variant == "quick":
        c.name = "barlow_twins_resnet20_quick"
        c.data.views.crop_scale = (0.2, 1.0)
        c.method.projector = ml_collections.ConfigDict(
            {"hidden": (512, 512), "out": 512, "hidden_bn": True, "out_bn": False})
        c.optimizer.name = "adamw"
        c.optimizer.learning_rate = 2e-3
        c.optimizer.weight_decay = 1e-4
        c.optimizer.warmup_epochs = 0.1
        c.batch_size = 256
        c.num_steps = 100
        c.log_every_steps = 10
        c.checkpoint_every_steps = 50
        c.probe.fit_split = "train[:10000]"
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; valid variants: quick")
    return c
