"""Model zoo: flax.linen image classifiers that return ``(logits, embedding)``, by name."""

from jaxdiv.models.mixer import MlpMixer
from jaxdiv.models.registry import MODEL_NAMES, ModelSpec, build_model, model_options
from jaxdiv.models.resnet import CifarResNet, WideResNet
from jaxdiv.models.simple import MLP, SimpleCNN
from jaxdiv.models.vit import ViT

__all__ = [
    "MLP",
    "MODEL_NAMES",
    "CifarResNet",
    "MlpMixer",
    "ModelSpec",
    "SimpleCNN",
    "ViT",
    "WideResNet",
    "build_model",
    "model_options",
]
