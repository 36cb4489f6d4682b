"""MLP-Mixer (Tolstikhin et al. 2021) for small images; the embedding is the mean token
after the final LayerNorm. Mixer-S defaults: dim 512, depth 8, token MLP 256, channel MLP 2048.
"""

import flax.linen as nn
import jax.numpy as jnp

from jaxdiv.models.common import Dtype, classifier_head


class _Mlp(nn.Module):
    hidden: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        out = x.shape[-1]
        x = nn.gelu(nn.Dense(self.hidden, dtype=self.dtype)(x))
        return nn.Dense(out, dtype=self.dtype)(x)


class MixerBlock(nn.Module):
    """Token mixing across patches, then channel mixing, each pre-LN with a residual."""

    token_mlp: int
    channel_mlp: int
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        drop = nn.Dropout(self.dropout, deterministic=not train)
        y = nn.LayerNorm(dtype=self.dtype)(x)
        y = _Mlp(self.token_mlp, self.dtype, name="token_mixing")(y.swapaxes(1, 2))
        x = x + drop(y.swapaxes(1, 2))
        y = nn.LayerNorm(dtype=self.dtype)(x)
        return x + drop(_Mlp(self.channel_mlp, self.dtype, name="channel_mixing")(y))


class MlpMixer(nn.Module):
    """Patchify (``patch`` x ``patch``, ``dim`` channels), ``depth`` Mixer blocks, mean pool."""

    num_classes: int
    dim: int = 512
    depth: int = 8
    token_mlp: int = 256
    channel_mlp: int = 2048
    patch: int = 4
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: jnp.ndarray, train: bool = False
    ) -> tuple[jnp.ndarray | None, jnp.ndarray]:
        x = x.astype(self.dtype)
        x = nn.Conv(
            self.dim,
            (self.patch, self.patch),
            strides=self.patch,
            padding="VALID",
            dtype=self.dtype,
            name="stem",
        )(x)
        b, h, w, c = x.shape
        x = x.reshape(b, h * w, c)
        for i in range(self.depth):
            x = MixerBlock(
                self.token_mlp, self.channel_mlp, self.dropout, self.dtype, name=f"block{i}"
            )(x, train)
        x = nn.LayerNorm(dtype=self.dtype, name="pre_head_norm")(x)
        return classifier_head(jnp.mean(x, axis=1), self.num_classes, zero_init=True)
