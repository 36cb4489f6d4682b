"""Memory budget and example tiling: the one home for how analysis kernels size their tiles.

Every kernel of ``jaxdiv.analysis`` walks the examples of a population in tiles so that its
temporaries stay within ``memory_budget`` bytes (the inputs and the ``[N, N]`` outputs are not
counted). The last tile is shifted left to end at ``M`` (every slice has one static size,
nothing is padded); the examples it shares with the previous tile are masked
(``tile_starts``). On CPU, tiles are also capped near a cache-sized number of bytes: such
tiles ran the kernels several times faster than budget-sized ones.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiv.errors import JaxdivError

DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes of temporaries a kernel may hold at once
# CPU caps: one [N, tile, ...] array of the pair kernels (example_tile), and one [N, tile, C]
# float32 array of the per-member kernels (logits_tile_size).
CPU_TILE_BYTES = 1 * 2**20
CPU_LOGITS_TILE_BYTES = 2 * 2**20


def check_budget(memory_budget) -> None:
    """Raise JaxdivError unless ``memory_budget`` is a positive integer number of bytes."""
    if not isinstance(memory_budget, int | np.integer) or memory_budget <= 0:
        raise JaxdivError(f"memory_budget must be a positive integer; got {memory_budget!r}")


def tile_size(m: int, row_bytes: int, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> int:
    """Examples per tile so that ``tile * row_bytes`` fits ``memory_budget`` (1 <= tile <= m).

    ``row_bytes`` is what one example costs across all live temporaries (e.g. 4 float32
    copies of ``members x classes``).
    """
    if memory_budget <= 0:
        raise JaxdivError(f"memory_budget must be a positive number of bytes; got {memory_budget}")
    return int(max(1, min(m, memory_budget // max(1, row_bytes))))


def example_tile(
    n_members: int,
    n_examples: int,
    row_bytes: int,
    memory_budget: int,
    *,
    copies: int = 1,
    cpu_tile_bytes: int | None = CPU_TILE_BYTES,
) -> int:
    """Examples per tile for kernels that hold ``copies`` arrays of ``[N, tile]`` rows of
    ``row_bytes`` each: all copies fit the budget, and on CPU one array also stays within
    ``cpu_tile_bytes`` (None: no cap)."""
    check_budget(memory_budget)
    per_example = max(1, n_members * row_bytes)
    t = memory_budget // (copies * per_example)
    if cpu_tile_bytes is not None and jax.default_backend() == "cpu":
        t = min(t, cpu_tile_bytes // per_example)
    return int(max(1, min(max(n_examples, 1), t)))


def logits_tile_size(logits_shape, memory_budget: int = DEFAULT_MEMORY_BUDGET, copies=4) -> int:
    """Tile for kernels that hold ``copies`` float32 arrays of [N, tile, C].

    On CPU the tile is also capped near ``CPU_LOGITS_TILE_BYTES`` per array (at least 8
    examples): cache-sized tiles ran these kernels 2-3x faster than budget-sized ones (N=64,
    M=10,000, C=100). Accelerators get the largest tile the budget allows.
    """
    n, m, c = logits_shape
    t = tile_size(m, copies * 4 * n * c, memory_budget)
    if jax.default_backend() == "cpu":
        t = min(t, max(8, CPU_LOGITS_TILE_BYTES // (4 * n * c)))
    return t


def tile_starts(k, m: int, chunk: int):
    """Start of tile ``k`` and the mask of its examples that no earlier tile has seen."""
    nominal = k * chunk
    start = jnp.minimum(nominal, m - chunk)
    valid = (start + jnp.arange(chunk)) >= nominal
    return start, valid


def fold_examples(body: Callable, init, m: int, chunk: int):
    """Reduce over example tiles: ``carry = body(carry, start, valid)`` for each tile.

    ``start`` is the (traced) first example of the tile, ``valid`` a bool [chunk] mask of the
    examples to count. Use inside ``jax.jit`` with static ``m`` and ``chunk``.
    """
    n_tiles = -(-m // chunk)

    def step(carry, k):
        start, valid = tile_starts(k, m, chunk)
        return body(carry, start, valid), None

    carry, _ = lax.scan(step, init, jnp.arange(n_tiles))
    return carry


def map_examples(fn: Callable, out_init, m: int, chunk: int, axis: int = 1):
    """Fill per-example outputs tile by tile: ``fn(start) -> pytree of [..., chunk, ...]``.

    ``out_init`` is a pytree of full-size buffers whose example axis is ``axis``; each tile's
    result is written at ``start`` (the overlapping last tile rewrites identical values).
    """
    n_tiles = -(-m // chunk)

    def step(k, out):
        start, _ = tile_starts(k, m, chunk)
        tile = fn(start)
        return jax.tree.map(
            lambda buf, t: lax.dynamic_update_slice_in_dim(buf, t.astype(buf.dtype), start, axis),
            out,
            tile,
        )

    return lax.fori_loop(0, n_tiles, step, out_init)


def slice_examples(x, start, chunk: int, axis: int = 1):
    """``x[..., start:start + chunk, ...]`` along ``axis`` (static size ``chunk``)."""
    return lax.dynamic_slice_in_dim(x, start, chunk, axis=axis)
