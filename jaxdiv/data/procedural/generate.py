"""Batches of procedural images, jitted and vmapped over examples, deterministic per example.

Image ``i`` of kind ``k`` under data seed ``s`` is rendered from the key
``fold_in(fold_in(PRNGKey(s), stream_k), i)``; per-seed parameters (the random generator's
weights) come from ``fold_in(PRNGKey(s), stream_k)``. An image therefore depends only on
(kind, seed, index), never on which other indices are generated with it or in what chunk.
Images come back as uint8 [N, size, size, 3] like a decoded CIFAR split (the trainer
normalises on device), or as the float32 values in [0, 1] before quantisation.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiv.data.procedural.registry import GENERATOR_NAMES, GENERATORS, MIXTURE, get
from jaxdiv.errors import JaxdivError

SIZE = 32
CHUNK = 512  # examples per jitted call (one compiled shape per kind; the last chunk is padded)
_MAX_INDEX = 2**31 - 1


def _seed_key(seed, stream: int) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(seed), stream)


@functools.partial(jax.jit, static_argnames=("kind", "size", "as_uint8"))
def _render(kind: str, seed, indices, size: int, as_uint8: bool):
    gen = GENERATORS[kind]
    seed_key = _seed_key(seed, gen.stream)
    keys = jax.vmap(lambda i: jax.random.fold_in(seed_key, i))(indices)
    images, labels = jax.vmap(gen.render, in_axes=(None, 0, None))(seed_key, keys, size)
    if as_uint8:
        images = jnp.round(jnp.clip(images, 0.0, 1.0) * 255.0).astype(jnp.uint8)
    return images, labels


@jax.jit
def _mixture_labels(seed, indices):
    seed_key = _seed_key(seed, MIXTURE.stream)
    draw = lambda i: jax.random.randint(  # noqa: E731
        jax.random.fold_in(seed_key, i), (), 0, len(GENERATOR_NAMES)
    )
    return jax.vmap(draw)(indices)


def _check(seed: int, indices) -> np.ndarray:
    if not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise JaxdivError(f"procedural data seed must be an integer in [0, 2**32), got {seed!r}")
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise JaxdivError(f"indices must be a 1-D array of integers, got {idx.dtype} {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() > _MAX_INDEX):
        raise JaxdivError(f"indices must lie in [0, 2**31), got [{idx.min()}, {idx.max()}]")
    return idx.astype(np.int32)


def _generator_batches(kind, seed, idx, size, as_uint8):
    n = len(idx)
    images = np.empty((n, size, size, 3), np.uint8 if as_uint8 else np.float32)
    labels = np.empty((n,), np.int32)
    for start in range(0, n, CHUNK):
        chunk = idx[start : start + CHUNK]
        padded = np.pad(chunk, (0, CHUNK - len(chunk))) if len(chunk) < CHUNK else chunk
        im, lab = _render(kind, np.uint32(seed), padded, size, as_uint8)
        images[start : start + len(chunk)] = np.asarray(im)[: len(chunk)]
        labels[start : start + len(chunk)] = np.asarray(lab)[: len(chunk)]
    return images, labels


def generate(
    kind: str, seed: int, indices, *, size: int = SIZE, as_uint8: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, size, size, 3], pseudo-class labels int32 [N]) for ``indices`` of ``kind``
    under data seed ``seed``: uint8 (``as_uint8``) or float32 in [0, 1]."""
    get(kind)
    idx = _check(seed, indices)
    if kind != MIXTURE.name:
        return _generator_batches(kind, seed, idx, size, as_uint8)
    labels = np.asarray(_mixture_labels(np.uint32(seed), idx)) if idx.size else idx
    images = np.empty((len(idx), size, size, 3), np.uint8 if as_uint8 else np.float32)
    for k, name in enumerate(GENERATOR_NAMES):
        rows = np.flatnonzero(labels == k)
        if rows.size:
            images[rows] = _generator_batches(name, seed, idx[rows], size, as_uint8)[0]
    return images, labels.astype(np.int32)


def images(kind: str, seed: int, indices, **kw) -> np.ndarray:
    """uint8 [N, 32, 32, 3] images (float32 in [0, 1] with ``as_uint8=False``)."""
    return generate(kind, seed, indices, **kw)[0]


def labels(kind: str, seed: int, indices) -> np.ndarray:
    """int32 [N] pseudo-classes (the rule is the kind's ``classes`` in the registry)."""
    return generate(kind, seed, indices)[1]
