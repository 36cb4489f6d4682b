"""Vision Transformer for small images (Dosovitskiy et al. 2021), pre-LayerNorm, mean-pooled.

On 32x32 inputs with ``patch=4`` the sequence is 8x8 = 64 tokens. Learned position
embeddings; the embedding is the token mean after the final LayerNorm (no class token).
"""

import flax.linen as nn
import jax.numpy as jnp

from jaxdiv.models.common import Dtype, classifier_head

_dense_init = nn.initializers.xavier_uniform()


class MlpBlock(nn.Module):
    """Dense-GELU-dropout-Dense-dropout."""

    hidden: int
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        out = x.shape[-1]
        x = nn.Dense(
            self.hidden,
            dtype=self.dtype,
            kernel_init=_dense_init,
            bias_init=nn.initializers.normal(1e-6),
        )(x)
        x = nn.Dropout(self.dropout, deterministic=not train)(nn.gelu(x))
        x = nn.Dense(
            out, dtype=self.dtype, kernel_init=_dense_init, bias_init=nn.initializers.normal(1e-6)
        )(x)
        return nn.Dropout(self.dropout, deterministic=not train)(x)


class EncoderBlock(nn.Module):
    """x + Attn(LN(x)), then x + MLP(LN(x))."""

    heads: int
    mlp_dim: int
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        y = nn.LayerNorm(dtype=self.dtype)(x)
        y = nn.MultiHeadDotProductAttention(
            num_heads=self.heads,
            dtype=self.dtype,
            kernel_init=_dense_init,
            deterministic=True,
        )(y, y)
        x = x + nn.Dropout(self.dropout, deterministic=not train)(y)
        y = nn.LayerNorm(dtype=self.dtype)(x)
        return x + MlpBlock(self.mlp_dim, self.dropout, self.dtype)(y, train)


class ViT(nn.Module):
    """ViT with ``depth`` blocks of width ``dim``, ``heads`` heads and MLP ``mlp_ratio * dim``."""

    num_classes: int
    dim: int = 192
    depth: int = 12
    heads: int = 3
    mlp_ratio: int = 4
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
            name="patch_embed",
        )(x)
        b, h, w, c = x.shape
        x = x.reshape(b, h * w, c)
        pos = self.param("pos_embed", nn.initializers.normal(0.02), (1, h * w, c))
        x = x + pos.astype(self.dtype)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        for i in range(self.depth):
            x = EncoderBlock(
                self.heads, self.mlp_ratio * self.dim, self.dropout, self.dtype, name=f"block{i}"
            )(x, train)
        x = nn.LayerNorm(dtype=self.dtype, name="encoder_norm")(x)
        return classifier_head(jnp.mean(x, axis=1), self.num_classes, zero_init=True)
