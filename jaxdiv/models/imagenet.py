"""ImageNet-size convolutional networks: ResNet-50 (He et al. 2016, v1.5) and DenseNet-121
(Huang et al. 2017). ViT-S/16 and Mixer-S/16 are the ``ViT`` and ``MlpMixer`` classes with
16x16 patches (see the registry).

Both take NHWC images (224x224 on ImageNet; any size >= 32 works) and return
``(logits, embedding)``, the embedding being the globally average-pooled final feature map.
Parameter counts at 1000 classes equal torchvision's: 25,557,032 (ResNet-50) and 7,978,856
(DenseNet-121).
"""

from functools import partial

import flax.linen as nn
import jax.numpy as jnp

from jaxdiv.models.common import Dtype, classifier_head, conv_init

_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def _norm(train: bool, dtype: Dtype, *, zero: bool = False, name: str | None = None):
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=_BN_MOMENTUM,
        epsilon=_BN_EPSILON,
        dtype=dtype,
        scale_init=nn.initializers.zeros if zero else nn.initializers.ones,
        name=name,
    )


def _stem(x, train: bool, dtype: Dtype):
    """7x7/2 convolution (64), BN, ReLU, 3x3/2 max pool: 224 -> 56."""
    x = nn.Conv(
        64,
        (7, 7),
        strides=2,
        padding=3,
        use_bias=False,
        kernel_init=conv_init,
        dtype=dtype,
        name="stem_conv",
    )(x)
    x = nn.relu(_norm(train, dtype, name="stem_bn")(x))
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


class Bottleneck(nn.Module):
    """1x1 (f) -> 3x3 (f, stride) -> 1x1 (4f), BN after each, ReLU(x + y). The stride sits on
    the 3x3 convolution (ResNet v1.5, as in torchvision and most ImageNet recipes)."""

    features: int
    strides: int = 1
    zero_init_residual: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        conv = partial(nn.Conv, use_bias=False, kernel_init=conv_init, dtype=self.dtype)
        y = nn.relu(_norm(train, self.dtype)(conv(self.features, (1, 1))(x)))
        y = conv(self.features, (3, 3), strides=self.strides, padding=1)(y)
        y = nn.relu(_norm(train, self.dtype)(y))
        y = conv(4 * self.features, (1, 1))(y)
        y = _norm(train, self.dtype, zero=self.zero_init_residual)(y)
        if self.strides != 1 or x.shape[-1] != 4 * self.features:
            x = conv(4 * self.features, (1, 1), strides=self.strides, name="proj_conv")(x)
            x = _norm(train, self.dtype, name="proj_bn")(x)
        return nn.relu(x + y)


class ResNet(nn.Module):
    """Bottleneck ResNet; ``stage_sizes=(3, 4, 6, 3)`` is ResNet-50, (3, 4, 23, 3) ResNet-101.

    ``zero_init_residual`` starts each block's last BN scale at zero (Goyal et al. 2017), so
    every block begins as the identity; it helps large-batch training and changes no count.
    """

    num_classes: int
    stage_sizes: tuple[int, ...] = (3, 4, 6, 3)
    width: int = 64
    zero_init_residual: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: jnp.ndarray, train: bool = False
    ) -> tuple[jnp.ndarray | None, jnp.ndarray]:
        x = _stem(x.astype(self.dtype), train, self.dtype)
        for stage, blocks in enumerate(self.stage_sizes):
            for block in range(blocks):
                strides = 2 if stage > 0 and block == 0 else 1
                x = Bottleneck(
                    self.width * 2**stage,
                    strides,
                    self.zero_init_residual,
                    self.dtype,
                    name=f"stage{stage + 1}_block{block + 1}",
                )(x, train)
        return classifier_head(jnp.mean(x, axis=(1, 2)), self.num_classes)


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (``bn_size * growth``)-BN-ReLU-3x3 conv (``growth``); output is
    concatenated to the input."""

    growth: int = 32
    bn_size: int = 4
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        conv = partial(nn.Conv, use_bias=False, kernel_init=conv_init, dtype=self.dtype)
        y = nn.relu(_norm(train, self.dtype)(x))
        y = conv(self.bn_size * self.growth, (1, 1))(y)
        y = nn.relu(_norm(train, self.dtype)(y))
        y = conv(self.growth, (3, 3), padding=1)(y)
        if self.dropout > 0:
            y = nn.Dropout(self.dropout, deterministic=not train)(y)
        return jnp.concatenate([x, y], axis=-1)


class DenseNet(nn.Module):
    """DenseNet-BC; ``block_sizes=(6, 12, 24, 16)`` with growth 32 is DenseNet-121."""

    num_classes: int
    block_sizes: tuple[int, ...] = (6, 12, 24, 16)
    growth: int = 32
    bn_size: int = 4
    compression: float = 0.5
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: jnp.ndarray, train: bool = False
    ) -> tuple[jnp.ndarray | None, jnp.ndarray]:
        x = _stem(x.astype(self.dtype), train, self.dtype)
        for i, layers in enumerate(self.block_sizes):
            for j in range(layers):
                x = DenseLayer(
                    self.growth,
                    self.bn_size,
                    self.dropout,
                    self.dtype,
                    name=f"block{i + 1}_layer{j + 1}",
                )(x, train)
            if i < len(self.block_sizes) - 1:
                x = nn.relu(_norm(train, self.dtype, name=f"transition{i + 1}_bn")(x))
                x = nn.Conv(
                    int(x.shape[-1] * self.compression),
                    (1, 1),
                    use_bias=False,
                    kernel_init=conv_init,
                    dtype=self.dtype,
                    name=f"transition{i + 1}_conv",
                )(x)
                x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = nn.relu(_norm(train, self.dtype, name="final_bn")(x))
        return classifier_head(jnp.mean(x, axis=(1, 2)), self.num_classes)


def check_imagenet_cnn(name: str, kw: dict) -> dict:
    """Registry check for ``resnet50`` / ``densenet121`` options."""
    from jaxdiv.errors import JaxdivError

    width = kw.get("width", 64)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise JaxdivError(f"model {name!r}: width must be an integer >= 1, got {width!r}")
    if not isinstance(kw.get("zero_init_residual", True), bool):
        raise JaxdivError(
            f"model {name!r}: zero_init_residual must be True or False, "
            f"got {kw['zero_init_residual']!r}"
        )
    dropout = kw.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise JaxdivError(f"model {name!r}: dropout must be a rate in [0, 1), got {dropout!r}")
    return kw
