"""CIFAR ResNets (He et al. 2016, section 4.2) and Wide ResNets (Zagoruyko & Komodakis 2016).

Both work on NHWC images of any size (32x32 CIFAR in practice) and return
``(logits, embedding)`` where the embedding is the globally average-pooled final feature map.
Shortcuts that change shape are 1x1 strided convolutions (option B); the published counts
(0.27M for ResNet-20, 0.85M for ResNet-56, 2.7M for WRN-16-4) change by under 1% for it.
"""

from functools import partial

import flax.linen as nn
import jax.numpy as jnp

from jaxdiv.models.common import Dtype, classifier_head, conv_init

# PyTorch's BatchNorm defaults (momentum 0.1 there is 0.9 here).
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def _norm(train: bool, dtype: Dtype, name: str | None = None) -> nn.BatchNorm:
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=_BN_MOMENTUM,
        epsilon=_BN_EPSILON,
        dtype=dtype,
        name=name,
    )


class BasicBlock(nn.Module):
    """Post-activation block: conv-BN-ReLU-conv-BN, add shortcut, ReLU."""

    features: int
    strides: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        conv = partial(nn.Conv, use_bias=False, kernel_init=conv_init, dtype=self.dtype)
        y = conv(self.features, (3, 3), strides=self.strides, padding=1)(x)
        y = nn.relu(_norm(train, self.dtype)(y))
        y = conv(self.features, (3, 3), padding=1)(y)
        y = _norm(train, self.dtype)(y)
        if self.strides != 1 or x.shape[-1] != self.features:
            x = conv(self.features, (1, 1), strides=self.strides, name="proj_conv")(x)
            x = _norm(train, self.dtype, name="proj_bn")(x)
        return nn.relu(x + y)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR: 3 stages of n BasicBlocks with 16/32/64 x ``width`` channels."""

    num_classes: int
    depth: int = 20
    width: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: jnp.ndarray, train: bool = False
    ) -> tuple[jnp.ndarray | None, jnp.ndarray]:
        blocks = (self.depth - 2) // 6
        x = x.astype(self.dtype)
        x = nn.Conv(
            16 * self.width,
            (3, 3),
            padding=1,
            use_bias=False,
            kernel_init=conv_init,
            dtype=self.dtype,
            name="stem_conv",
        )(x)
        x = nn.relu(_norm(train, self.dtype, name="stem_bn")(x))
        for stage, channels in enumerate((16, 32, 64)):
            for block in range(blocks):
                strides = 2 if stage > 0 and block == 0 else 1
                x = BasicBlock(channels * self.width, strides, self.dtype)(x, train)
        return classifier_head(jnp.mean(x, axis=(1, 2)), self.num_classes)


class WideBlock(nn.Module):
    """Pre-activation wide block: BN-ReLU-conv-(dropout)-BN-ReLU-conv, plus shortcut."""

    features: int
    strides: int = 1
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        conv = partial(nn.Conv, use_bias=False, kernel_init=conv_init, dtype=self.dtype)
        act = nn.relu(_norm(train, self.dtype)(x))
        y = conv(self.features, (3, 3), strides=self.strides, padding=1)(act)
        y = nn.relu(_norm(train, self.dtype)(y))
        if self.dropout > 0:
            y = nn.Dropout(self.dropout, deterministic=not train)(y)
        y = conv(self.features, (3, 3), padding=1)(y)
        if self.strides != 1 or x.shape[-1] != self.features:
            # As in the reference code, the projection reads the pre-activated input.
            x = conv(self.features, (1, 1), strides=self.strides, name="proj_conv")(act)
        return x + y


class WideResNet(nn.Module):
    """WRN-``depth``-``widen``: 3 stages of (depth-4)/6 wide blocks, 16/32/64 x ``widen``."""

    num_classes: int
    depth: int = 16
    widen: int = 4
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: jnp.ndarray, train: bool = False
    ) -> tuple[jnp.ndarray | None, jnp.ndarray]:
        blocks = (self.depth - 4) // 6
        x = x.astype(self.dtype)
        x = nn.Conv(
            16,
            (3, 3),
            padding=1,
            use_bias=False,
            kernel_init=conv_init,
            dtype=self.dtype,
            name="stem_conv",
        )(x)
        for stage, channels in enumerate((16, 32, 64)):
            for block in range(blocks):
                strides = 2 if stage > 0 and block == 0 else 1
                x = WideBlock(channels * self.widen, strides, self.dropout, self.dtype)(x, train)
        x = nn.relu(_norm(train, self.dtype, name="final_bn")(x))
        return classifier_head(jnp.mean(x, axis=(1, 2)), self.num_classes)
