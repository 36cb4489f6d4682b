"""Shared pieces of the ImageNet configs (not a config itself).

Data: TFDS ``imagenet2012`` (prepare it with ``tfds build imagenet2012
--file_format=array_record`` after placing the manually downloaded archives, see
https://www.tensorflow.org/datasets/catalog/imagenet2012), streamed by grain: every training
image is decoded, Inception-cropped to 224x224 and RandAugmented on the host, flipped on
device. The last 1% of the official training split (12,812 images, "minival") is held out for
validation and temperature calibration; the official 50,000-image ``validation`` split is the
test set the paper reports on.
"""

import ml_collections

NUM_TRAIN = 1_281_167
TRAIN_SPLIT = "train[:99%]"  # 1,268,355 images
MINIVAL_SPLIT = "train[99%:]"  # 12,812 held-out training images: validation / calibration
TEST_SPLIT = "validation"  # the official 50,000-image validation set, reported as test


def data_config(
    *,
    train_split: str = TRAIN_SPLIT,
    num_train: int = 1_268_355,
    randaugment: tuple[int, int] | None = (2, 9),
    image_size: int = 224,
    train_crop: str = "inception",
) -> ml_collections.ConfigDict:
    d = ml_collections.ConfigDict()
    d.dataset = "imagenet2012"
    d.data_dir = ml_collections.FieldReference(None, field_type=str)
    d.streaming = True
    d.train_split = train_split
    d.eval_split = MINIVAL_SPLIT
    # Shape facts for the compile-only dry run (no data needed); real runs read the split.
    d.num_train_examples = num_train
    d.num_classes = 1000
    d.image_size = image_size
    d.train_crop = train_crop  # host crop: "inception" (random area 8-100%) or "resize"
    d.crop_scale = (0.08, 1.0)
    d.center_fraction = 0.875  # eval: central 87.5% (resize 256, crop 224)
    d.randaugment = (
        None
        if randaugment is None
        else ml_collections.ConfigDict({"num_layers": randaugment[0], "magnitude": randaugment[1]})
    )
    d.num_threads = 32  # host decode threads per process
    d.num_workers = 8  # grain worker processes per host (RandAugment is partly GIL-bound)
    d.prefetch = 4
    d.crop_padding = 0  # the supervised method's on-device crop: none (cropped on host)
    d.flip = True
    return d


def supervised_base(name: str) -> ml_collections.ConfigDict:
    """Supervised ResNet-50 with RandAugment (2 layers, magnitude 9): the paper's base model.

    SGD + Nesterov momentum 0.9, batch 1024, learning rate 0.4 (0.1 x batch / 256), 5 warm-up
    epochs then cosine decay, weight decay 1e-4 (kernels only), 90 epochs, bfloat16 compute.
    """
    c = ml_collections.ConfigDict()
    c.name = name
    c.seed = 0
    c.data = data_config()
    c.model = ml_collections.ConfigDict({"name": "resnet50", "kwargs": {}})
    c.method = ml_collections.ConfigDict({"name": "supervised", "label_smoothing": 0.0})
    c.optimizer = ml_collections.ConfigDict(
        {
            "name": "sgd",
            "learning_rate": 0.4,
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 1e-4,
            "warmup_epochs": 5.0,
            "schedule": "cosine",
        }
    )
    c.batch_size = 1024
    c.num_epochs = 90.0
    c.num_steps = -1
    c.compute_dtype = "bfloat16"
    # Data parallel over every device; see configs/imagenet/vit_s16.py:fsdp for sharded
    # parameters. Rules are (regex, spec) pairs, jaxdiv/train/mesh.py.
    c.mesh = ml_collections.ConfigDict(
        {"data": -1, "fsdp": 1, "model": 1, "member": 1, "rules": []}
    )
    c.checkpoint_every_steps = 1250  # about one epoch
    c.keep_checkpoints = 3
    c.log_every_steps = 100
    c.eval_every_steps = 6250  # minival every ~5 epochs
    c.eval_batch_size = 1000
    # The offline linear probe of representation learners (jaxdiv/store/probe.py, fitted by
    # `jaxdiv predict`),
    # here for every member so that the population's configs differ only where they should:
    # fit on 10% of the training images, L2 strength chosen on minival.
    c.probe = ml_collections.ConfigDict(
        {
            "fit_split": "train[:10%]",
            "val_split": MINIVAL_SPLIT,
            "l2_grid": (1e-6, 1e-5, 1e-4, 1e-3),
            "knn_k": 20,
            "knn_temperature": 0.07,
            "max_iter": 1000,
        }
    )
    return c


def transformer_optimizer(lr: float = 1e-3, wd: float = 0.1, warmup: float = 8.0):
    """AdamW with (decoupled) weight decay on kernels, warm-up then cosine (big_vision-like)."""
    return ml_collections.ConfigDict(
        {
            "name": "adamw",
            "learning_rate": lr,
            "b1": 0.9,
            "b2": 0.999,
            "weight_decay": wd,
            "warmup_epochs": warmup,
            "schedule": "cosine",
        }
    )


def ssl_base(name: str, method: str) -> ml_collections.ConfigDict:
    """A self-supervised ResNet-50 (SimCLR or BYOL) on the same images, no labels used by
    the objective.

    The host only decodes and resizes each image to 224x224 (``train_crop="resize"``); the
    two views (random resized crop 8-100%, flip, colour jitter, grayscale, blur, solarise) are
    made on device by the method (jaxdiv/data/views.py). ImageNet mean/std normalisation.
    The classifier is the offline linear probe (``config.probe``, set in supervised_base).
    """
    c = supervised_base(name)
    c.data = data_config(randaugment=None, train_crop="resize")
    c.data.views = ml_collections.ConfigDict(
        {
            "crop_scale": (0.08, 1.0),
            "out_size": 224,
            "flip_p": 0.5,
            "jitter_p": 0.8,
            "brightness": 0.4,
            "contrast": 0.4,
            "saturation": 0.2,
            "hue": 0.1,
            "grayscale_p": 0.2,
            "blur_p": 0.5,
            "blur_sigma": (0.1, 2.0),
            "blur_kernel": 23,
            "solarize_p": 0.0,
            "mean": (0.485, 0.456, 0.406),
            "std": (0.229, 0.224, 0.225),
        }
    )
    c.method = ml_collections.ConfigDict({"name": method})
    return c
