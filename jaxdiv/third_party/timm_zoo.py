"""timm image classifiers (``timm:resnet18``, ``timm:vit_small_patch16_224.augreg_in21k``).

The model is built with ``pretrained=False``; its weights are a local state_dict
(``weights=FILE``, loaded strictly into a model with the split's classes), the file of its
pretrained config already in the user's Hugging Face or torch hub cache (``weights=None``:
loaded by timm from that file, never downloaded), or ``"random"``. Preprocessing is timm's
own evaluation transform from the model's pretrained config (``resolve_data_config`` and
``create_transform``: resize by ``crop_pct``, centre crop to ``input_size``, ``mean`` /
``std``). The embedding is ``forward_head(forward_features(x), pre_logits=True)``, the input
of the classifier.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxdiv.errors import JaxdivError
from jaxdiv.files import json_safe
from jaxdiv.third_party import RANDOM, check_classes
from jaxdiv.third_party.torch_common import import_torch, load_into, load_state_dict, require

_HUB_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def cached_weights(cfg: dict) -> str | None:
    """The local file of a timm pretrained config in the Hugging Face or torch hub cache, or
    None (nothing is fetched)."""
    repo = cfg.get("hf_hub_id")
    if repo:
        from huggingface_hub import try_to_load_from_cache

        names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else list(_HUB_FILES)
        for filename in names:
            path = try_to_load_from_cache(repo, filename)
            if isinstance(path, str):
                return path
    if cfg.get("url"):
        import torch

        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg["url"]).name
        if path.exists():
            return str(path)
    return None


class TimmAdapter:
    kind = "timm"

    def __init__(self, model: str, *, weights: str | None, num_classes: int):
        self.torch = import_torch("timm")
        timm = require("timm", "timm")
        owner = f"timm:{model}"
        try:
            if weights is None:
                probe = timm.create_model(model, pretrained=False)
                path = cached_weights(probe.pretrained_cfg)
                if path is None:
                    raise JaxdivError(
                        f"{owner}: its pretrained weights are not in your cache (Hugging Face "
                        f"hub id {probe.pretrained_cfg.get('hf_hub_id')!r}) and nothing is "
                        "downloaded here; pass --weights=FILE (a state_dict .pth/.safetensors) "
                        "or --weights=random"
                    )
                net = timm.create_model(
                    model, pretrained=True, pretrained_cfg_overlay={"file": path}
                )
                check_classes(owner, int(net.num_classes), num_classes, f"of {path}")
                self.weights_source = path
            else:
                net = timm.create_model(model, pretrained=False, num_classes=num_classes)
                if weights != RANDOM:
                    load_into(net, load_state_dict(weights, owner), owner, weights)
                self.weights_source = weights
        except RuntimeError as err:  # e.g. an unknown model name
            raise JaxdivError(f"{owner}: {str(err).splitlines()[0]}") from None
        except (OSError, ValueError) as err:  # an hf-hub: name whose files are not cached
            first = (str(err).splitlines() or [type(err).__name__])[0][:120]
            raise JaxdivError(
                f"{owner}: {first} (nothing is downloaded here: give a timm model name with "
                "--weights=FILE, or cache the model first)"
            ) from None
        self.model, self.num_classes = model, num_classes
        self.net = net.eval()
        config = timm.data.resolve_data_config({}, model=self.net)
        self.transform = timm.data.create_transform(**config, is_training=False)
        self.preprocessing = json_safe(config)

    def preprocess(self, images: np.ndarray):
        """timm's evaluation transform of each uint8 [H, W, 3] image -> float [B, 3, S, S]."""
        from PIL import Image

        return self.torch.stack([self.transform(Image.fromarray(im)) for im in images])

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self.preprocess(images)
        with self.torch.inference_mode():
            features = self.net.forward_features(x)
            embedding = self.net.forward_head(features, pre_logits=True)
            logits = self.net.forward_head(features)
        return logits.float().numpy(), embedding.float().reshape(len(x), -1).numpy()
