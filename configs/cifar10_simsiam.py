"""SimSiam with a ResNet-20 backbone on CIFAR-10, evaluated by an offline linear probe.

Run (full schedule, one GPU):
    python -m jaxdiv train --config=configs/cifar10_simsiam.py --workdir=runs/simsiam
    python -m jaxdiv predict --workdir=runs/simsiam --splits=validation,test

Run (quick variant, 2 CPU cores):
    python -m jaxdiv train --config=configs/cifar10_simsiam.py:quick --workdir=runs/simsiam_quick
    python -m jaxdiv predict --workdir=runs/simsiam_quick --splits=validation,test

The second command (`predict`, for a method without a classifier) fits the offline probe
(jaxdiv/store/probe.py: multinomial logistic regression on frozen embeddings of un-augmented
images, L2 chosen on `validation`), records its accuracy and a kNN accuracy in the member's
info, and writes the probe's logits and the embeddings into WORKDIR/store like any
supervised member's. Training logs `train_online_probe_accuracy`: the ONLINE probe on
augmented views, not comparable with the offline numbers.

Expected:
- full: 800 epochs, batch 512, SGD momentum 0.9 lr 0.06 (0.03 x batch / 256) cosine,
  wd 5e-4, the paper's CIFAR heads (2-layer projector ending in BN, 512-wide bottleneck
  predictor). Not yet measured on a GPU.
- quick: 100 AdamW steps of batch 256 (two views each) on train[:45000]; the offline probe
  is fitted on train[:10000]. Measured on an idle 2-core CPU machine (no GPU), 2026-11-25,
  before jaxdiv's Eigen-convolution default (which cuts the pre-training time to 60-70% of
  it): pre-training 5.9 min, `predict` 28 s; offline probe 32.2% test (31.8% validation),
  kNN 29.4% test: no better than the backbone at initialisation. The backbone embedding's
  variance stays in about one direction at this length (effective rank 1.0 of 64 on test;
  1.5 at initialisation, 10.2 after quick SimCLR), and SGD (lr 0.1) instead of AdamW gave
  28.4%: SimSiam needs a much longer run (the full schedule; not measured here) before its
  probe means anything. Reference: the same ResNet-20 at initialisation (1 step at learning
  rate 0, same probe): 33.1% test / 32.6% validation, kNN 29.6%.
  (Probe figures measured with the probe's earlier solver, optax L-BFGS on the same
  objective.)

- Why short runs stay at initialisation, and what makes them learn (measured 2026-12-02 on an
  idle 2-core CPU machine, at the quick-start's scale: ResNet-8 backbone, one epoch of
  train[:22500] in batches of 128, 20x20 views, AdamW with 0.2 warm-up epochs and cosine
  decay; offline probe fitted on train[:22500], test accuracy; the same backbone at
  initialisation: 38.0%, SimCLR 47.0%):
  at learning rate 2e-3 SimSiam reaches 41.4%; a predictor learning 10x faster
  (`optimizer.lr_multipliers={"pred": 10.0}`, as SimSiam's fixed predictor learning rate)
  43.0%; with learning rate 4e-3 too, 44.5% (+6.5 points). About 35 s of training each
  (projector 512-512 with output BN, predictor 128 wide).
  With the quick-start's other fast backbone, the mean-pooled 16/32/64-channel cnn (40.4% at
  initialisation), the same recipe gave 42.6% (+2.2) after one epoch.

Any key can be overridden, e.g. `--config.optimizer.learning_rate=0.03`.
"""

import ml_collections

from configs import ssl_common


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    ssl_common.check_variant(variant)
    method = ml_collections.ConfigDict(
        {
            "name": "simsiam",
            "projector": ssl_common.head((2048,), 2048, out_bn=True),
            "predictor": ssl_common.head((512,), 2048),
        }
    )
    c = ssl_common.pretraining_config(
        "simsiam_resnet20", method, learning_rate=0.06, weight_decay=5e-4, warmup_epochs=0.0
    )
    if variant == "quick":
        ssl_common.make_quick(c)
        c.method.projector = ssl_common.head((512,), 512, out_bn=True)
        c.method.predictor = ssl_common.head((128,), 512)
    return c
