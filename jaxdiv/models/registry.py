"""Models by name: ``build_model("resnet20", 10, width=2)`` -> a flax.linen Module.

Each name fixes some hyper-parameters (``resnet56`` fixes ``depth=56``) and exposes the rest
as keyword options with defaults. Every module maps float images [B, H, W, 3] to
``(logits [B, num_classes] float32 or None when num_classes == 0, embedding [B, D] float32)``.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxdiv.errors import JaxdivError, choices_error
from jaxdiv.models.imagenet import DenseNet, ResNet, check_imagenet_cnn
from jaxdiv.models.mixer import MlpMixer
from jaxdiv.models.resnet import CifarResNet, WideResNet
from jaxdiv.models.simple import MLP, SimpleCNN
from jaxdiv.models.vit import ViT

_DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its module class, the fields its name fixes, its tunable options."""

    cls: type[nn.Module]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None


def _fail(name: str, message: str) -> JaxdivError:
    return JaxdivError(f"model {name!r}: {message}")


def _positive_int(name: str, key: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(name, f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _dropout(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise _fail(name, f"dropout must be a rate in [0, 1), got {value!r}")
    return float(value)


def _check_resnet(name: str, kw: dict[str, Any]) -> dict[str, Any]:
    depth = _positive_int(name, "depth", kw["depth"], 8)
    if (depth - 2) % 6:
        raise _fail(name, f"depth must be 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
    _positive_int(name, "width", kw["width"])
    return kw


def _check_wide(name: str, kw: dict[str, Any]) -> dict[str, Any]:
    depth = _positive_int(name, "depth", kw["depth"], 10)
    if (depth - 4) % 6:
        raise _fail(name, f"depth must be 6n+4 (10, 16, 22, 28, 40, ...), got {depth}")
    _positive_int(name, "widen", kw["widen"])
    kw["dropout"] = _dropout(name, kw["dropout"])
    return kw


def _check_transformer(name: str, kw: dict[str, Any]) -> dict[str, Any]:
    dim = _positive_int(name, "dim", kw["dim"])
    for key in ("depth", "patch", "mlp_ratio", "token_mlp", "channel_mlp"):
        if key in kw:
            _positive_int(name, key, kw[key])
    if "heads" in kw:
        if kw["heads"] is None:  # keep heads of width 64, as ViT-Ti/S/B do
            kw["heads"] = max(1, dim // 64)
        heads = _positive_int(name, "heads", kw["heads"])
        if dim % heads:
            raise _fail(name, f"dim ({dim}) must be divisible by heads ({heads})")
    kw["dropout"] = _dropout(name, kw["dropout"])
    return kw


def _check_cnn(name: str, kw: dict[str, Any]) -> dict[str, Any]:
    _positive_int(name, "width", kw["width"])
    channels = kw["channels"]
    if not isinstance(channels, Sequence) or isinstance(channels, str) or not channels:
        raise _fail(name, f"channels must list each block's width, got {channels!r}")
    kw["channels"] = tuple(_positive_int(name, "channels", c) for c in channels)
    if kw["pool"] not in ("flatten", "mean"):
        raise _fail(name, f"pool must be 'flatten' or 'mean', got {kw['pool']!r}")
    _positive_int(name, "hidden", kw["hidden"])
    if not isinstance(kw["batch_norm"], bool):
        raise _fail(name, f"batch_norm must be True or False, got {kw['batch_norm']!r}")
    kw["dropout"] = _dropout(name, kw["dropout"])
    return kw


def _check_mlp(name: str, kw: dict[str, Any]) -> dict[str, Any]:
    hidden = kw["hidden"]
    if isinstance(hidden, int):
        hidden = (hidden,)
    if not isinstance(hidden, Sequence) or isinstance(hidden, str):
        raise _fail(name, f"hidden must be a list of layer widths, got {hidden!r}")
    kw["hidden"] = tuple(_positive_int(name, "hidden", h) for h in hidden)
    kw["dropout"] = _dropout(name, kw["dropout"])
    return kw


def _vit(dim: int) -> dict[str, Any]:
    return {"dim": dim, "depth": 12, "heads": None, "mlp_ratio": 4, "patch": 4, "dropout": 0.0}


_REGISTRY: dict[str, ModelSpec] = {
    "resnet20": ModelSpec(CifarResNet, {"depth": 20}, {"width": 1}, _check_resnet),
    "resnet56": ModelSpec(CifarResNet, {"depth": 56}, {"width": 1}, _check_resnet),
    "resnet": ModelSpec(CifarResNet, {}, {"depth": 20, "width": 1}, _check_resnet),
    "wrn16_4": ModelSpec(WideResNet, {"depth": 16, "widen": 4}, {"dropout": 0.0}, _check_wide),
    "wide_resnet": ModelSpec(
        WideResNet, {}, {"depth": 16, "widen": 4, "dropout": 0.0}, _check_wide
    ),
    # heads=None means dim // 64: 3 for vit_tiny (192), 6 for vit_small (384).
    "vit_tiny": ModelSpec(ViT, {}, _vit(192), _check_transformer),
    "vit_small": ModelSpec(ViT, {}, _vit(384), _check_transformer),
    "mixer_small": ModelSpec(
        MlpMixer,
        {},
        {"dim": 512, "depth": 8, "token_mlp": 256, "channel_mlp": 2048, "patch": 4, "dropout": 0.0},
        _check_transformer,
    ),
    "cnn": ModelSpec(
        SimpleCNN,
        {},
        {
            "width": 1,
            "channels": (32, 64, 128),
            "pool": "flatten",
            "hidden": 256,
            "batch_norm": True,
            "dropout": 0.0,
        },
        _check_cnn,
    ),
    "mlp": ModelSpec(MLP, {}, {"hidden": (512, 512), "dropout": 0.0}, _check_mlp),
    # ImageNet-size (224x224) models; ViT-S/16 and Mixer-S/16 are ViT and MlpMixer with
    # 16x16 patches. Counts at 1000 classes: 25.6M, 8.0M, 22.0M, 18.5M.
    "resnet50": ModelSpec(
        ResNet,
        {"stage_sizes": (3, 4, 6, 3)},
        {"width": 64, "zero_init_residual": True},
        check_imagenet_cnn,
    ),
    "densenet121": ModelSpec(
        DenseNet,
        {"block_sizes": (6, 12, 24, 16), "growth": 32},
        {"dropout": 0.0},
        check_imagenet_cnn,
    ),
    "vit_s16": ModelSpec(
        ViT,
        {"patch": 16},
        {"dim": 384, "depth": 12, "heads": None, "mlp_ratio": 4, "dropout": 0.0},
        _check_transformer,
    ),
    "mixer_s16": ModelSpec(
        MlpMixer,
        {"patch": 16},
        {"dim": 512, "depth": 8, "token_mlp": 256, "channel_mlp": 2048, "dropout": 0.0},
        _check_transformer,
    ),
}

MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def model_options(name: str) -> dict[str, Any]:
    """The keyword options ``name`` accepts, with their defaults."""
    if name not in _REGISTRY:
        raise choices_error("model", name, MODEL_NAMES)
    return dict(_REGISTRY[name].options)


def _compute_dtype(name: str, dtype: Any) -> Any:
    try:
        resolved = jnp.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in _DTYPES:
        raise _fail(name, f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    return resolved.type


def build_model(name: str, num_classes: int, *, dtype: Any = jnp.float32, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with a ``num_classes``-way head (0: no head).

    ``dtype`` is the compute dtype (``jnp.bfloat16`` on GPU/TPU); parameters stay float32 and
    outputs are float32. ``kwargs`` override the model's options (see ``model_options``).
    """
    if name not in _REGISTRY:
        raise choices_error("model", name, MODEL_NAMES)
    spec = _REGISTRY[name]
    unknown = sorted(set(kwargs) - set(spec.options))
    if unknown:
        valid = ", ".join(sorted(spec.options)) or "(none)"
        raise JaxdivError(
            f"model {name!r} has no option(s) {', '.join(unknown)}; valid options: {valid}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise _fail(name, f"num_classes must be an integer >= 0, got {num_classes!r}")
    fields = {**spec.options, **kwargs, **spec.fixed}
    if spec.check is not None:
        fields = spec.check(name, fields)
    return spec.cls(num_classes=num_classes, dtype=_compute_dtype(name, dtype), **fields)
