"""What the PyTorch adapters share: importing torch offline, reading a local state_dict into a
model with one-line refusals, and the input of a model's final linear layer (its penultimate
embedding).

Importing goes through ``import_torch``, which sets ``HF_HUB_OFFLINE=1`` (and
``TRANSFORMERS_OFFLINE=1``) first, so the Hugging Face libraries read only the local cache.
A torchvision wheel built for another torch (PyPI's CUDA build beside torch's CPU build)
cannot load its C operators, and its ``__init__`` then fails while registering fake kernels
for two of them (``operator torchvision::nms does not exist``), which breaks ``import
timm`` and ``import transformers`` too. ``import_torch`` declares those two operator schemas
in that case only, so torchvision's Python part (models and transforms, all that image
classifiers use) imports; its detection operators stay unavailable.
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from jaxdiv.errors import JaxdivError

_STUB: list[Any] = []  # keeps the declared torchvision schemas alive (a Library drops them)
_TV_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
STATE_DICT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


def require(module: str, extra: str):
    """Import ``module`` (after ``import_torch``), or refuse naming the extra to install."""
    import_torch(extra)
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise JaxdivError(
            f"the {extra} adapter needs {module} ({err}); install it with "
            f"pip install -e '.[{extra}]'"
        ) from None


def import_torch(extra: str):
    """``torch``, offline, with torchvision importable (module docstring)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import torch
    except ImportError:
        raise JaxdivError(
            f"the {extra} adapter needs torch; install it with pip install -e '.[{extra}]' "
            "(torch==2.13.0, the CPU build)"
        ) from None
    _python_only_torchvision(torch)
    return torch


def _python_only_torchvision(torch) -> None:
    if _STUB:
        return
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return
    library = Path(spec.origin).parent / "_C.so"
    if not library.exists():
        return
    try:
        torch.ops.load_library(str(library))  # what torchvision does first; harmless twice
        return
    except (OSError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")
    for schema in _TV_SCHEMAS:
        lib.define(schema)
    _STUB.append(lib)


def load_state_dict(path: str | Path, owner: str) -> dict:
    """The tensors of a local ``.pth``/``.pt``/``.bin`` (read with ``weights_only``) or
    ``.safetensors`` file, unwrapped from a ``state_dict``/``model`` entry and a
    ``module.`` prefix."""
    path = Path(path)
    if path.is_dir() or path.suffix not in STATE_DICT_SUFFIXES:
        raise JaxdivError(
            f"{owner}: --weights={path} is not a state_dict file "
            f"({', '.join(STATE_DICT_SUFFIXES)}); save one with torch.save(model.state_dict(), "
            "'weights.pth')"
        )
    torch = import_torch(owner.split(":")[0])
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, pickled objects, not a checkpoint
        raise JaxdivError(
            f"{owner}: cannot read {path} ({type(err).__name__}: {str(err).splitlines()[0]}); "
            "save the weights with torch.save(model.state_dict(), path)"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise JaxdivError(f"{owner}: {path} holds {type(state).__name__}, not a state_dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_into(model, state: dict, owner: str, where: str) -> None:
    """Load ``state`` into ``model`` strictly; missing, unexpected or misshapen tensors are
    refused in one line."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: {list(state[k].shape)} in the file, {list(own[k].shape)} in the model"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    parts = []
    if shapes:
        parts.append("; ".join(shapes[:2]) + (f" (+{len(shapes) - 2} more)" if shapes[2:] else ""))
    if missing:
        parts.append(f"{len(missing)} tensor(s) missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unknown tensor(s) (e.g. {unexpected[0]})")
    if parts:
        raise JaxdivError(
            f"{owner}: the weights in {where} do not fit the model ({'; '.join(parts)}); pass "
            "a state_dict of this architecture with the split's number of classes"
        )
    model.load_state_dict(state, strict=True)


def last_linear(module, num_classes: int, owner: str):
    """The last ``torch.nn.Linear`` of ``module`` (its classifier), checked to have
    ``num_classes`` outputs."""
    import torch

    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise JaxdivError(f"{owner}: no linear classifier found in the model")
    head = linears[-1]
    if head.out_features != num_classes:
        raise JaxdivError(
            f"{owner}: the last linear layer has {head.out_features} outputs, not the "
            f"{num_classes} classes; this adapter reads the penultimate embedding at the "
            "classifier's input"
        )
    return head


@contextmanager
def head_input(head):
    """Collect the input of ``head`` (a module) during the forward passes inside the block:
    yields a list that receives one tensor per call."""
    seen: list = []
    handle = head.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    try:
        yield seen
    finally:
        handle.remove()


def to_numpy(tensor) -> np.ndarray:
    """A float32 NumPy array [B, D] of a tensor (flattened after the batch axis)."""
    return tensor.detach().to("cpu").float().reshape(tensor.shape[0], -1).numpy()
