"""BYOL with a ResNet-20 backbone on CIFAR-10, evaluated by an offline linear probe.

Run (full schedule, one GPU):
    python -m jaxdiv train --config=configs/cifar10_byol.py --workdir=runs/byol
    python -m jaxdiv.methods.probe_eval --workdir=runs/byol --splits=validation,test

Run (quick variant, 2 CPU cores):
    python -m jaxdiv train --config=configs/cifar10_byol.py:quick --workdir=runs/byol_quick
    python -m jaxdiv.methods.probe_eval --workdir=runs/byol_quick --splits=validation,test

The second command fits the offline probe (multinomial logistic regression on frozen
embeddings of un-augmented images, L2 chosen on `validation`), reports its accuracy and a
kNN accuracy, and writes the probe's logits and the embeddings into WORKDIR/store like any
supervised member's. Training logs `train_online_probe_accuracy`: the ONLINE probe on
augmented views, not comparable with the offline numbers.

Expected:
- full: 800 epochs, batch 512, SGD momentum 0.9 lr 1.0 cosine, 10 warm-up epochs, wd 1e-5,
  target decay from 0.99 to 1 (cosine), BYOL's asymmetric views (blur always on view 1,
  solarisation on view 2). Not run here (no GPU was lent to the session that wrote it).
- quick: see QUICK_MEASURED below (measured on a shared 2-core CPU machine).

Any key can be overridden, e.g. `--config.method.base_tau=0.996`.
"""

import ml_collections

from configs import ssl_common

QUICK_MEASURED = "not yet measured"


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    ssl_common.check_variant(variant)
    method = ml_collections.ConfigDict({
        "name": "byol",
        "base_tau": 0.99,  # target EMA decay at step 0, cosine to 1 at the last step
        "projector": ssl_common.head((1024,), 256),
        "predictor": ssl_common.head((1024,), 256),
    })
    c = ssl_common.pretraining_config(
        "byol_resnet20", method, learning_rate=1.0, weight_decay=1e-5)
    c.data.views.saturation = 0.2
    c.data.views.blur_kernel = 3
    # BYOL's asymmetric pair: blur always on view 1 and rarely on view 2; solarise view 2.
    c.data.view1 = ml_collections.ConfigDict({"blur_p": 1.0, "solarize_p": 0.0})
    c.data.view2 = ml_collections.ConfigDict({"blur_p": 0.1, "solarize_p": 0.2})
    if variant == "quick":
        ssl_common.make_quick(c)
    return c
