"""Dense associative memories and the modern Hopfield network: params, energies, updates.

**Dense associative memory** (Krotov & Hopfield 2016): spins ``s`` in ``{-1, +1}^n`` and
patterns ``xi_mu`` (``[P, n]``) with the energy

    E(s) = -sum_mu F(xi_mu . s)

for a fast-growing interaction function ``F``: the polynomial ``F(x) = x^k``, the rectified
polynomial ``F(x) = max(x, 0)^k`` (Krotov & Hopfield 2016), or ``F(x) = exp(x)`` (Demircigil,
Heusel, Loewe, Upgang & Vermet 2017), which store about ``n^(k-1)`` and ``2^(n/2)`` patterns
instead of ``0.14 n``. Asynchronous recall sets one spin at a time to the sign of lower energy,

    s_i <- sign(sum_mu [F(xi_mu . s |_{s_i=+1}) - F(xi_mu . s |_{s_i=-1})])

(a zero difference keeps ``s_i``), so the energy never rises. For ``F = exp`` the sign is taken
from ``logsumexp`` differences and :func:`energy` returns ``-sum_mu exp(xi_mu . s - n)``, the
energy divided by the constant ``e^n``, so that it stays finite in float32 for any ``n`` (the
same minima and the same order of states).

**Modern Hopfield network** (Ramsauer et al. 2020, "Hopfield networks is all you need"):
continuous states ``xi`` in ``R^d``, patterns ``X`` (``[N, d]``, one per row), the update

    xi <- X^T softmax(beta X xi)

and the energy

    E(xi) = -lse(beta, X xi) + 1/2 xi . xi + log(N) / beta + M^2 / 2,
    lse(beta, z) = (1 / beta) log sum_mu exp(beta z_mu),   M = max_mu ||x_mu||,

which the update never raises (it is a CCCP step) and which lies in ``[0, 2 M^2]``. A
well-separated pattern is retrieved in one update for large ``beta``; it is the attention
mechanism of a transformer with ``X`` as keys and values.

The recall loops (:func:`jdbn.samplers.recall.async_recall` for dense memories,
:func:`jdbn.samplers.recall.modern_recall`) live in :mod:`jdbn.samplers.recall`.

References:
  Krotov & Hopfield (2016), "Dense associative memory for pattern recognition", NeurIPS.
  Demircigil, Heusel, Loewe, Upgang & Vermet (2017), "On a model of associative memory with
  huge storage capacity", J. Stat. Phys. 168.
  Ramsauer et al. (2020), "Hopfield networks is all you need", arXiv:2008.02217 (ICLR 2021).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jdbn.models import hopfield as H

Array = jax.Array

__all__ = [
    "DenseMemory", "dense", "interaction", "energy", "update_unit", "ModernHopfield", "modern",
    "check_query", "modern_update", "modern_energy"
]

KINDS = ("poly", "rectpoly", "exp")


@struct.dataclass
class DenseMemory:
  """Params of a dense associative memory.

  Attributes:
    patterns: ``[P, n]`` stored spins.
    kind: ``"poly"``, ``"rectpoly"`` or ``"exp"`` (static).
    degree: ``k`` of the polynomials (static; unused for ``"exp"``).
  """

  patterns: Array
  kind: str = struct.field(pytree_node=False, default="poly")
  degree: int = struct.field(pytree_node=False, default=3)

  @property
  def n(self) -> int:
    return int(self.patterns.shape[-1])


def dense(patterns: jax.typing.ArrayLike, kind: str = "poly", degree: int = 3,
          dtype=jnp.float32) -> DenseMemory:
  """A dense associative memory storing ``patterns`` (``[P, n]`` in ``{-1, +1}``), checked.

  Raises:
    ValueError: for patterns that are not a non-empty ``[P, n]`` array of +-1, an unknown
      ``kind`` or a ``degree`` below 1.
  """
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
  if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 1:
    raise ValueError(f"degree must be an int >= 1, got {degree!r}")
  H.check_patterns(patterns, H.Spin())
  return DenseMemory(jnp.asarray(patterns, dtype), kind, int(degree))


def interaction(mem: DenseMemory, x: Array) -> Array:
  """``F(x)`` elementwise (for ``"exp"``, ``exp(x - n)``; see the module docstring)."""
  if mem.kind == "poly":
    return x**mem.degree
  if mem.kind == "rectpoly":
    return jnp.maximum(x, 0)**mem.degree
  return jnp.exp(x - mem.n)


def energy(mem: DenseMemory, s: Array) -> Array:
  """``E(s) = -sum_mu F(xi_mu . s)``: ``[..., n] -> [...]`` (``"exp"``: divided by ``e^n``)."""
  return -jnp.sum(interaction(mem, s @ mem.patterns.T), axis=-1)


def _gain(mem: DenseMemory, s: Array, i) -> Array:
  """``E(s_i = -1) - E(s_i = +1)`` in sign (exactly, for ``"exp"`` up to a positive factor)."""
  col = mem.patterns[:, i]
  rest = mem.patterns @ s - col * s[i]
  up, down = rest + col, rest - col
  if mem.kind == "exp":
    return jax.nn.logsumexp(up) - jax.nn.logsumexp(down)
  return jnp.sum(interaction(mem, up) - interaction(mem, down))


def update_unit(mem: DenseMemory, s: Array, i) -> Array:
  """The zero-temperature value of spin ``i`` of one state ``s: [n]`` (a scalar)."""
  g = _gain(mem, s, i)
  return jnp.where(g > 0, 1.0, jnp.where(g < 0, -1.0, s[i])).astype(s.dtype)


# ----------------------------------------------------------------------------- modern Hopfield


@struct.dataclass
class ModernHopfield:
  """Params of a modern continuous Hopfield network.

  Attributes:
    patterns: ``[N, d]`` stored patterns, one per row.
    beta: inverse temperature (a scalar array, so it can be traced or learned).
  """

  patterns: Array
  beta: Array


def modern(patterns: jax.typing.ArrayLike, beta: jax.typing.ArrayLike = 1.0) -> ModernHopfield:
  """A modern Hopfield network storing real ``patterns`` ``[N, d]`` at inverse temperature
  ``beta > 0``; ``ValueError`` for a wrong rank, non-finite values or ``beta <= 0``."""
  x = np.asarray(patterns)
  if x.ndim != 2 or x.shape[0] < 1:
    raise ValueError(f"patterns must be a non-empty [N, d] array, got shape {x.shape}")
  if not np.all(np.isfinite(x)):
    raise ValueError("patterns contain NaN or inf values")
  b = np.asarray(beta)
  if b.shape != () or not np.isfinite(b) or b <= 0:
    raise ValueError(f"beta must be a finite positive scalar, got {beta!r}")
  x = jnp.asarray(x, jnp.result_type(float, x))
  return ModernHopfield(x, jnp.asarray(beta, x.dtype))


def check_query(mem: ModernHopfield, xi) -> Array:
  """``xi`` (``[..., d]``, finite when concrete) in the patterns' dtype, else ``ValueError``."""
  d = mem.patterns.shape[1]
  if jnp.ndim(xi) < 1 or jnp.shape(xi)[-1] != d:
    raise ValueError(f"states must have shape [..., {d}] to match the patterns, got "
                     f"{jnp.shape(xi)}")
  x = H._concrete(xi)
  if x is not None and not np.all(np.isfinite(x)):
    raise ValueError("states contain NaN or inf values")
  return jnp.asarray(xi, mem.patterns.dtype)


def modern_update(mem: ModernHopfield, xi: jax.typing.ArrayLike) -> Array:
  """One update ``xi <- X^T softmax(beta X xi)``: ``[..., d] -> [..., d]``."""
  xi = check_query(mem, xi)
  return jax.nn.softmax(mem.beta * (xi @ mem.patterns.T), axis=-1) @ mem.patterns


def modern_energy(mem: ModernHopfield, xi: jax.typing.ArrayLike) -> Array:
  """``E(xi) = -lse(beta, X xi) + 1/2 xi . xi + log(N)/beta + M^2/2``: ``[..., d] -> [...]``."""
  xi = check_query(mem, xi)
  n = mem.patterns.shape[0]
  m2 = jnp.max(jnp.sum(jnp.square(mem.patterns), axis=-1))
  lse = jax.nn.logsumexp(mem.beta * (xi @ mem.patterns.T), axis=-1) / mem.beta
  return -lse + 0.5 * jnp.sum(jnp.square(xi), axis=-1) + jnp.log(n) / mem.beta + 0.5 * m2
