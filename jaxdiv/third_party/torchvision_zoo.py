"""torchvision classification models (``torchvision:resnet18``,
``torchvision:resnet50.IMAGENET1K_V2``: a name, optionally ``.`` and a weights entry).

The model is built with ``weights=None``; its weights are a local state_dict (``weights=FILE``,
for a model with the split's classes), the weights entry's file already in the torch hub cache
(``weights=None``; never downloaded), or ``"random"``. Preprocessing is the weights entry's
own ``transforms()`` (``DEFAULT`` unless named): resize to ``resize_size`` with its
interpolation and antialiasing, centre crop to ``crop_size``, ``mean`` / ``std``; it runs on
the whole uint8 batch as a tensor. The embedding is the input of the last linear layer (the
classifier), read with a forward pre-hook.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxdiv.errors import JaxdivError
from jaxdiv.third_party import RANDOM, check_classes
from jaxdiv.third_party.torch_common import (
    head_input,
    import_torch,
    last_linear,
    load_into,
    load_state_dict,
    require,
    to_numpy,
)


def weights_entry(models, name: str, tag: str | None, owner: str):
    """The torchvision weights entry ``tag`` (``DEFAULT`` when None) of model ``name``."""
    try:
        enum = models.get_model_weights(name)
    except (ValueError, KeyError):
        raise JaxdivError(
            f"{owner}: unknown torchvision model {name!r}; valid names: "
            + ", ".join(sorted(models.list_models(module=models)))
        ) from None
    if tag is None:
        return enum.DEFAULT
    try:
        return enum[tag]
    except KeyError:
        raise JaxdivError(
            f"{owner}: no weights entry {tag!r}; valid entries: " + ", ".join(e.name for e in enum)
        ) from None


class TorchvisionAdapter:
    kind = "torchvision"

    def __init__(self, model: str, *, weights: str | None, num_classes: int):
        self.torch = torch = import_torch("torchvision")
        models = require("torchvision.models", "torchvision")
        owner = f"torchvision:{model}"
        name, _, tag = model.partition(".")
        entry = weights_entry(models, name, tag or None, owner)
        if weights is None:
            path = Path(torch.hub.get_dir()) / "checkpoints" / Path(entry.url).name
            if not path.exists():
                raise JaxdivError(
                    f"{owner}: its weights {entry} are not in your torch hub cache ({path}) "
                    "and nothing is downloaded here; pass --weights=FILE (a state_dict .pth) "
                    "or --weights=random"
                )
            classes = len(entry.meta["categories"])
            check_classes(owner, classes, num_classes, f"of {entry}")
            weights_file: str | None = str(path)
        else:
            weights_file = None if weights == RANDOM else weights
        net = models.get_model(name, weights=None, num_classes=num_classes)
        if weights_file is not None:
            load_into(net, load_state_dict(weights_file, owner), owner, weights_file)
        self.model, self.num_classes = model, num_classes
        self.weights_source = weights_file or RANDOM
        self.net = net.eval()
        self.head = last_linear(self.net, num_classes, owner)
        self.transform = entry.transforms()
        t = self.transform
        self.preprocessing = {
            "weights_entry": str(entry),
            "resize_size": list(t.resize_size),
            "crop_size": list(t.crop_size),
            "interpolation": t.interpolation.value,
            "antialias": t.antialias,
            "mean": list(t.mean),
            "std": list(t.std),
        }

    def preprocess(self, images: np.ndarray):
        """The weights entry's transforms on uint8 [B, H, W, 3] -> float [B, 3, S, S]."""
        x = self.torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        return self.transform(x)

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self.preprocess(images)
        with self.torch.inference_mode(), head_input(self.head) as seen:
            logits = self.net(x)
        return to_numpy(logits), to_numpy(seen[-1])
