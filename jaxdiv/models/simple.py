"""Small baselines: a VGG-style CNN and a multi-layer perceptron."""

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxdiv.models.common import Dtype, classifier_head, conv_init


class SimpleCNN(nn.Module):
    """Blocks of [conv3x3-(BN)-ReLU] x 2 + 2x2 max-pool (``channels`` x ``width`` channels,
    32/64/128 by default), then flatten, a ``hidden``-unit dense ReLU layer (the embedding),
    dropout, and the head. ``pool="mean"`` averages the last block's feature map over space
    instead of flattening it, so the network takes any image size (as two-view pre-training
    on crops smaller than the probe's images needs)."""

    num_classes: int
    width: int = 1
    channels: Sequence[int] = (32, 64, 128)
    pool: str = "flatten"
    hidden: int = 256
    batch_norm: bool = True
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: jnp.ndarray, train: bool = False
    ) -> tuple[jnp.ndarray | None, jnp.ndarray]:
        x = x.astype(self.dtype)
        for channels in self.channels:
            for _ in range(2):
                x = nn.Conv(
                    channels * self.width,
                    (3, 3),
                    padding=1,
                    kernel_init=conv_init,
                    use_bias=not self.batch_norm,
                    dtype=self.dtype,
                )(x)
                if self.batch_norm:
                    x = nn.BatchNorm(
                        use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype
                    )(x)
                x = nn.relu(x)
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = jnp.mean(x, axis=(1, 2)) if self.pool == "mean" else x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="fc")(x))
        logits, _ = classifier_head(
            nn.Dropout(self.dropout, deterministic=not train)(x), self.num_classes
        )
        return logits, x.astype(jnp.float32)


class MLP(nn.Module):
    """Flatten, then Dense-ReLU-dropout for each width in ``hidden``; the last is the embedding."""

    num_classes: int
    hidden: Sequence[int] = (512, 512)
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: jnp.ndarray, train: bool = False
    ) -> tuple[jnp.ndarray | None, jnp.ndarray]:
        x = x.astype(self.dtype).reshape(x.shape[0], -1)
        emb = x  # with no hidden layers this is a linear model on the pixels
        for width in self.hidden:
            x = nn.relu(nn.Dense(width, dtype=self.dtype)(x))
            emb = x
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        logits, _ = classifier_head(x, self.num_classes)
        return logits, emb.astype(jnp.float32)
