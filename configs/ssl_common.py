"""The blocks every self-supervised CIFAR-10 config shares (not a runnable config itself).

`pretraining_config` gives a ResNet-20 pre-training run on train[:45000] with two augmented
views, SGD + cosine schedule, no evaluation during training and the offline probe's settings;
`make_quick` turns it into the 2-CPU-core variant. cifar10_simclr/byol/simsiam/barlow_twins
add their method, heads and learning rate; the population configs reuse `SIMCLR_VIEWS`.
"""

import ml_collections

from configs import cifar10_supervised

# SimCLR's augmentation for 32x32 images (jaxdiv.data.views.ViewConfig fields).
SIMCLR_VIEWS = {
    "crop_scale": (0.08, 1.0),
    "flip_p": 0.5,
    "jitter_p": 0.8,
    "brightness": 0.4,
    "contrast": 0.4,
    "saturation": 0.4,
    "hue": 0.1,
    "grayscale_p": 0.2,
    "blur_p": 0.0,
}


def head(hidden: tuple[int, ...], out: int, out_bn: bool = False) -> ml_collections.ConfigDict:
    """A projector/predictor MLP: hidden layers with batch norm, then a linear output."""
    return ml_collections.ConfigDict(
        {"hidden": hidden, "out": out, "hidden_bn": True, "out_bn": out_bn}
    )


def pretraining_config(
    name: str,
    method: ml_collections.ConfigDict,
    *,
    learning_rate: float,
    weight_decay: float,
    warmup_epochs: float = 10.0,
) -> ml_collections.ConfigDict:
    """800 epochs of batch 512 (SGD momentum 0.9, cosine) pre-training ``method``.

    The run settings (data source, model, mesh, checkpointing, logging) are the supervised
    config's; the supervised-only keys (crop augmentation, fine-tuning source) are dropped.
    """
    c = cifar10_supervised.get_config()
    c.name = name
    del c.data["crop_padding"], c.data["flip"], c["finetune_from"]
    c.data.eval_split = ""  # no classifier during pretraining; `predict` fits the probe
    # Both views (jaxdiv.data.views.ViewConfig fields); data.view1 / data.view2 override.
    c.data.views = ml_collections.ConfigDict(SIMCLR_VIEWS)
    c.method = method
    c.optimizer.update(
        learning_rate=learning_rate,
        nesterov=False,
        weight_decay=weight_decay,
        warmup_epochs=warmup_epochs,
    )
    c.batch_size = 512
    c.num_epochs = 800.0
    c.eval_every_steps = 0
    # The offline linear probe and kNN, fitted by `python -m jaxdiv predict --workdir=...`
    # (jaxdiv/store/probe.py).
    c.probe = ml_collections.ConfigDict(
        {
            "fit_split": "train[:45000]",
            "val_split": "validation",
            "l2_grid": (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
            "knn_k": 20,
            "knn_temperature": 0.07,
        }
    )
    return c


def make_quick(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The 2-CPU-core variant: 100 AdamW steps of batch 256, probe fitted on 10,000 images."""
    c.name = f"{c.name}_quick"
    c.data.views.crop_scale = (0.2, 1.0)
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 2e-3
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_epochs = 0.1
    c.batch_size = 256
    c.num_steps = 100
    c.log_every_steps = 10
    c.checkpoint_every_steps = 50
    c.probe.fit_split = "train[:10000]"
    return c


def check_variant(variant: str) -> None:
    """Refuse variants other than "" and "quick"."""
    if variant not in ("", "quick"):
        raise ValueError(f"unknown variant {variant!r}; valid variants: quick")
