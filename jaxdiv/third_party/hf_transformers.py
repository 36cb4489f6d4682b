"""Hugging Face ``transformers`` image classifiers (``transformers:google/vit-base-patch16-224``
or ``transformers:/path/to/saved_model``).

``MODEL`` is a folder written by ``save_pretrained`` or a hub id already in the user's cache
(read with ``local_files_only=True`` and ``HF_HUB_OFFLINE=1``: nothing downloads);
``weights=FOLDER`` reads that folder instead, ``"random"`` builds the model from its config
alone. Preprocessing is the model's own image processor (``preprocessor_config.json``:
resize, centre crop, rescale, ``image_mean`` / ``image_std``). The embedding is the input of
the classifier's last linear layer (``model.classifier``), read with a forward pre-hook:
ViT's final [CLS] token after the layer norm, ResNet's pooled features.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxdiv.errors import JaxdivError
from jaxdiv.third_party import RANDOM, check_classes
from jaxdiv.third_party.torch_common import head_input, import_torch, last_linear, require, to_numpy

_PROCESSOR_KEYS = (
    "image_processor_type",
    "do_resize",
    "size",
    "resample",
    "do_center_crop",
    "crop_size",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
)


def _load(loader, source: str, owner: str, what: str):
    try:
        return loader.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as err:
        raise JaxdivError(
            f"{owner}: no {what} at {source!r} in a local folder or your Hugging Face cache "
            f"({str(err).splitlines()[0][:160]}); nothing is downloaded here: pass a folder "
            "written by save_pretrained (config.json, model weights, preprocessor_config.json)"
        ) from None


class TransformersAdapter:
    kind = "transformers"

    def __init__(self, model: str, *, weights: str | None, num_classes: int):
        self.torch = import_torch("transformers")
        hf = require("transformers", "transformers")
        owner = f"transformers:{model}"
        source = model if weights in (None, RANDOM) else weights
        if weights not in (None, RANDOM) and not Path(weights).is_dir():
            raise JaxdivError(
                f"{owner}: --weights={weights} must be a folder written by save_pretrained"
            )
        config = _load(hf.AutoConfig, source, owner, "model config")
        check_classes(owner, int(config.num_labels), num_classes, f"of {source}")
        if weights == RANDOM:
            net = hf.AutoModelForImageClassification.from_config(config)
            self.weights_source = RANDOM
        else:
            net = _load(hf.AutoModelForImageClassification, source, owner, "image classifier")
            self.weights_source = str(source)
        self.processor = _load(hf.AutoImageProcessor, source, owner, "image processor")
        self.model, self.num_classes = model, num_classes
        self.net = net.eval()
        self.head = last_linear(getattr(self.net, "classifier", self.net), num_classes, owner)
        settings = self.processor.to_dict()
        self.preprocessing = {k: settings[k] for k in _PROCESSOR_KEYS if k in settings}

    def preprocess(self, images: np.ndarray):
        """The image processor on uint8 [B, H, W, 3] -> float ``pixel_values`` [B, 3, S, S]."""
        out = self.processor(
            images=list(images), return_tensors="pt", input_data_format="channels_last"
        )
        return out["pixel_values"]

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self.preprocess(images)
        with self.torch.inference_mode(), head_input(self.head) as seen:
            logits = self.net(pixel_values=x).logits
        return to_numpy(logits), to_numpy(seen[-1])
