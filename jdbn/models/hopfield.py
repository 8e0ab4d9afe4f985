"""Hopfield networks, the model: spin units, params, Hebbian and Storkey storage, the energy.

A Hopfield net (Hopfield 1982) on ``n`` units ``s`` in ``{-1, +1}`` (or ``{0, 1}``) with
symmetric couplings ``W`` (zero diagonal) and thresholds ``theta`` has the energy

    E(s) = -1/2 s^T W s + theta^T s

and unit ``i`` sees the local field ``h_i = (W s)_i - theta_i``; its zero-temperature update
(:func:`update_unit`) is ``s_i <- sign(h_i)`` (a zero field keeps ``s_i``), which changes the
energy by ``-|h_i| |ds_i|``. At inverse temperature ``beta`` the net is a Boltzmann machine with
the Gibbs measure ``p(s) ∝ exp(-beta E(s))``. :class:`Hopfield` is a
:class:`jdbn.models.base.BlockModel` with one unit per block (or any partition into uncoupled
groups), so :func:`jdbn.samplers.gibbs.chain` samples ``model.tempered(beta)``. The recall
dynamics (asynchronous, synchronous, Glauber) live in :mod:`jdbn.samplers.recall`.

Storage: the Hebbian rule ``W = (1/n) sum_mu xi_mu xi_mu^T`` with zero diagonal stores about
``n / (2 ln n)`` random patterns as exact fixed points (McEliece et al. 1987); the Storkey rule
(Storkey 1997) stores about ``n / sqrt(2 ln n)``. States are ``{-1, +1}`` (:class:`Spin`) or
``{0, 1}`` (:func:`to_binary`, :func:`to_spin` convert between the two).

References:
  Hopfield (1982), "Neural networks and physical systems with emergent collective computational
  abilities", PNAS 79.
  Storkey (1997), "Increasing the capacity of a Hopfield network without sacrificing
  functionality", ICANN.
  McEliece, Posner, Rodemich & Venkatesh (1987), "The capacity of the Hopfield associative
  memory", IEEE Trans. Inf. Theory 33.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jdbn import units as U
from jdbn.models import base

Array = jax.Array

__all__ = [
    "Spin", "Hopfield", "network", "hebbian", "storkey", "energy", "local_field", "update_unit",
    "update_all", "overlap", "is_fixed_point", "to_binary", "to_spin", "check_states",
    "check_patterns"
]


@dataclasses.dataclass(frozen=True)
class Spin(U.Units):
  """Ising spins in ``{-1, +1}`` (``jdbn.units`` has only ``{0, 1}`` Bernoulli units).

  ``E_x = -a . x``, ``p(x_i = +1 | phi) = sigmoid(2 (a_i + phi_i))``,
  ``E[x_i | phi] = tanh(a_i + phi_i)``; the log-partition is ``sum_i log(2 cosh(a_i + phi_i))``.
  """

  enumerable = True
  linear_energy = True

  def energy(self, x, bias, log_sigma=None):
    return -jnp.sum(x * bias, axis=-1)

  def mean(self, phi, bias, log_sigma=None):
    return jnp.tanh(bias + phi)

  def sample(self, key, phi, bias, log_sigma=None):
    z = bias + phi
    up = jax.random.uniform(key, z.shape, z.dtype) < jax.nn.sigmoid(2 * z)
    return jnp.where(up, 1, -1).astype(z.dtype)

  def log_partition_terms(self, phi, bias, log_sigma=None):
    z = bias + phi
    return U.softplus(2 * z) - z  # log(e^z + e^-z)

  def log_partition(self, phi, bias, log_sigma=None):
    return jnp.sum(self.log_partition_terms(phi, bias), axis=-1)

  def base_rate(self, mean, eps=1e-3):
    return jnp.arctanh(jnp.clip(mean, -1 + eps, 1 - eps))

  def init_bias(self, data, log_sigma):
    m = np.clip(data.reshape(-1, data.shape[-1]).mean(0), -1 + 1e-3, 1 - 1e-3)
    return np.arctanh(m), log_sigma

  def states(self, n):
    return np.array(list(itertools.product([-1.0, 1.0], repeat=n)), np.float32).reshape(-1, n)

  def states_at(self, idx, n, dtype=jnp.float32):
    shifts = jnp.arange(n - 1, -1, -1, dtype=jnp.uint32)
    return (2 * ((idx[:, None].astype(jnp.uint32) >> shifts) & 1).astype(dtype) - 1)

  def n_states(self, n):
    return 2**n

  def validate(self, x, name="x"):
    super().validate(x, name)
    x = np.asarray(x)
    if x.size and (x.min() < -1 or x.max() > 1):
      raise ValueError(f"{name} must lie in [-1, 1] for Spin units (spins or their means), got "
                       f"values in [{x.min():g}, {x.max():g}]")


_ALPHABETS = {"spin": Spin(), "binary": U.Bernoulli()}


def _levels(units: U.Units) -> tuple[float, float]:
  """``(low, high)`` states of a unit family of the net."""
  if isinstance(units, Spin):
    return -1.0, 1.0
  if isinstance(units, U.Bernoulli):
    return 0.0, 1.0
  raise ValueError(f"a Hopfield net has Spin or Bernoulli units, got {type(units).__name__}")


@struct.dataclass
class Hopfield(base.BlockModel):
  """Params of a Hopfield network (see the module docstring for the energy).

  Attributes:
    W: ``[n, n]`` symmetric couplings with zero diagonal.
    theta: ``[n]`` thresholds (the block-model bias is ``-theta``).
    units: :class:`Spin` (states ``{-1, +1}``) or :class:`jdbn.units.Bernoulli` (``{0, 1}``),
      static.
    groups: the Gibbs blocks, a partition of ``range(n)`` into uncoupled groups (static; one
      unit per block by default).
  """

  W: Array
  theta: Array
  units: U.Units = struct.field(pytree_node=False, default=Spin())
  groups: tuple = struct.field(pytree_node=False, default=())

  @property
  def n(self) -> int:
    return int(self.theta.shape[-1])

  @property
  def levels(self) -> tuple[float, float]:
    """``(low, high)``: ``(-1, 1)`` for spins, ``(0, 1)`` for binary units."""
    return _levels(self.units)

  @property
  def blocks(self) -> tuple[base.Block, ...]:
    return tuple(base.Block(f"g{k}", self.units, len(g)) for k, g in enumerate(self.groups))

  @property
  def schedule(self) -> tuple[tuple[int, ...], ...]:
    return tuple((k,) for k in range(len(self.groups)))

  def bias(self, i: int) -> Array:
    return -self.theta[np.asarray(self.groups[i])]

  def field(self, states, i: int) -> Array:
    return self._join(states) @ self.W[:, np.asarray(self.groups[i])]

  def energy(self, states) -> Array:
    return energy(self, self._join(states))

  def tempered(self, beta, base_biases=None) -> "Hopfield":
    beta = jnp.asarray(beta, self.W.dtype)
    b0 = 0.0 if base_biases is None else self._join(base_biases)
    return self.replace(W=beta * self.W, theta=-((1 - beta) * b0 - beta * self.theta))

  def split(self, s: Array) -> tuple[Array, ...]:
    """``[..., n] ->`` one ``[..., len(group)]`` array per block."""
    return tuple(s[..., np.asarray(g)] for g in self.groups)

  def _join(self, states) -> Array:
    if len(self.groups) == 1 and self.groups[0] == tuple(range(self.n)):
      return states[0]
    order = np.concatenate([np.asarray(g) for g in self.groups])
    return jnp.concatenate(list(states), axis=-1)[..., np.argsort(order)]


def _concrete(x) -> Optional[np.ndarray]:
  """``x`` as a NumPy array, or ``None`` under tracing (checks are then skipped)."""
  return None if isinstance(x, jax.core.Tracer) else np.asarray(x)


def check_states(s, units: U.Units, n: int, name: str = "states") -> None:
  """``ValueError`` unless concrete ``s`` is ``[..., n]``, finite and in the units' alphabet."""
  if jnp.ndim(s) < 1 or jnp.shape(s)[-1] != n:
    raise ValueError(f"{name} must have shape [..., {n}], got {jnp.shape(s)}")
  x, (lo, hi) = _concrete(s), _levels(units)
  if x is not None and not np.all(np.isfinite(x)):
    raise ValueError(f"{name} contains NaN or inf values")
  if x is not None and not np.all((x == lo) | (x == hi)):
    bad = x[(x != lo) & (x != hi)].ravel()[0]
    raise ValueError(f"{name} must hold only {lo:g} and {hi:g} for {type(units).__name__} "
                     f"units, found {bad:g}")


def check_patterns(patterns, units: U.Units, n: Optional[int] = None,
                   name: str = "patterns") -> None:
  """``ValueError`` unless ``patterns`` is ``[P, n]`` (``n`` if given) in the alphabet."""
  if jnp.ndim(patterns) != 2 or jnp.shape(patterns)[0] < 1:
    raise ValueError(f"{name} must be a non-empty [P, n] array, got shape {jnp.shape(patterns)}")
  check_states(patterns, units, jnp.shape(patterns)[1] if n is None else n, name)


def _check_weights(W, theta, atol: float) -> None:
  if jnp.ndim(W) != 2 or jnp.shape(W)[0] != jnp.shape(W)[1]:
    raise ValueError(f"W must be a square [n, n] matrix, got shape {jnp.shape(W)}")
  n = jnp.shape(W)[0]
  if jnp.shape(theta) != (n,):
    raise ValueError(f"theta must have shape [{n}] to match W, got {jnp.shape(theta)}")
  w, t = _concrete(W), _concrete(theta)
  if w is None or t is None:
    return
  if not (np.all(np.isfinite(w)) and np.all(np.isfinite(t))):
    raise ValueError("W or theta contains NaN or inf values")
  asym = np.max(np.abs(w - w.T), initial=0.0)
  if asym > atol:
    raise ValueError(f"W must be symmetric: max |W - W^T| = {asym:.3g} > atol = {atol:g}")
  diag = np.max(np.abs(np.diag(w)), initial=0.0)
  if diag > atol:
    raise ValueError(f"W must have a zero diagonal (no self-couplings): max |W_ii| = {diag:.3g}")


def _units_for(alphabet: Union[str, U.Units]) -> U.Units:
  if isinstance(alphabet, U.Units):
    _levels(alphabet)
    return alphabet
  if alphabet not in _ALPHABETS:
    raise ValueError(f"alphabet must be 'spin' or 'binary', got {alphabet!r}")
  return _ALPHABETS[alphabet]


def _groups_for(W, blocks) -> tuple[tuple[int, ...], ...]:
  n = jnp.shape(W)[0]
  if isinstance(blocks, str):
    if blocks == "sequential":
      return tuple((i,) for i in range(n))
    if blocks in ("colour", "color"):
      from jdbn.models import bm  # the greedy colouring of the coupling graph
      w = _concrete(W)
      if w is None:
        raise ValueError("blocks='colour' needs concrete weights")
      return bm.colouring(w != 0)
    raise ValueError(f"blocks must be 'sequential', 'colour' or a partition, got {blocks!r}")
  groups = tuple(tuple(int(i) for i in g) for g in blocks)
  if sorted(i for g in groups for i in g) != list(range(n)) or any(not g for g in groups):
    raise ValueError(f"blocks must partition the {n} units into non-empty groups")
  w = _concrete(W)
  for g in groups:
    if w is not None and np.any(w[np.ix_(g, g)] != 0):
      raise ValueError(f"the units of block {g} are coupled, so it cannot be one Gibbs block")
  return groups


def network(W: jax.typing.ArrayLike,
            theta: Optional[jax.typing.ArrayLike] = None,
            *,
            alphabet: Union[str, U.Units] = "spin",
            blocks: Union[str, Sequence[Sequence[int]]] = "sequential",
            atol: float = 1e-5) -> Hopfield:
  """A Hopfield net from given couplings, checked.

  Args:
    W: ``[n, n]`` couplings; must be finite, symmetric and zero on the diagonal (within
      ``atol``; the result holds ``(W + W^T) / 2`` with the diagonal set to zero exactly).
    theta: ``[n]`` thresholds (zeros by default).
    alphabet: ``"spin"`` (``{-1, +1}``) or ``"binary"`` (``{0, 1}``), or a unit family.
    blocks: Gibbs blocks: ``"sequential"`` (one unit each), ``"colour"`` (a greedy colouring of
      the graph of non-zero couplings) or a partition into uncoupled groups.
    atol: tolerance of the symmetry and diagonal checks.

  Raises:
    ValueError: for a non-square, asymmetric, self-coupled or non-finite ``W``, or a ``theta``
      of the wrong shape.
  """
  W = jnp.asarray(W, jnp.result_type(float, W))
  theta = jnp.zeros(W.shape[:1], W.dtype) if theta is None else jnp.asarray(theta, W.dtype)
  _check_weights(W, theta, atol)
  W = 0.5 * (W + W.T) * (1 - jnp.eye(W.shape[0], dtype=W.dtype))
  return Hopfield(W, theta, _units_for(alphabet), _groups_for(W, blocks))


def _as_spins(patterns, units):
  lo, _ = _levels(units)
  return patterns if lo == -1.0 else 2 * patterns - 1


def hebbian(patterns: jax.typing.ArrayLike, *, alphabet: Union[str, U.Units] = "spin",
            dtype=jnp.float32) -> Hopfield:
  """Hebbian storage (Hopfield 1982): ``W = (1/n) sum_mu xi_mu xi_mu^T``, zero diagonal.

  Args:
    patterns: ``[P, n]`` in the alphabet; ``{0, 1}`` patterns are stored as the spins
      ``2 x - 1`` and the net converted with :func:`to_binary`, so it has the same fixed points.
    alphabet: ``"spin"`` or ``"binary"``.
    dtype: float dtype of the params.

  Returns:
    The net, zero thresholds (for spins), one unit per Gibbs block.
  """
  units = _units_for(alphabet)
  check_patterns(patterns, units)
  xi = _as_spins(jnp.asarray(patterns, dtype), units)
  n = xi.shape[1]
  return _stored((xi.T @ xi) / n * (1 - jnp.eye(n, dtype=dtype)), units)


def storkey(patterns: jax.typing.ArrayLike, *, alphabet: Union[str, U.Units] = "spin",
            dtype=jnp.float32) -> Hopfield:
  """Storkey's incremental rule (Storkey 1997), one pattern at a time in a ``lax.scan``:

      W_ij <- W_ij + (1/n) (xi_i xi_j - xi_i h_ji - h_ij xi_j),  h_ij = sum_{k != i, j} W_ik xi_k

  with the diagonal kept at zero. Local and incremental like Hebb's rule, it stores about
  ``n / sqrt(2 ln n)`` patterns instead of ``n / (2 ln n)``.

  Args:
    patterns: ``[P, n]`` in the alphabet (``{0, 1}`` ones are stored as spins, as in
      :func:`hebbian`).
    alphabet: ``"spin"`` or ``"binary"``.
    dtype: float dtype.
  """
  units = _units_for(alphabet)
  check_patterns(patterns, units)
  return _stored(_storkey_weights(_as_spins(jnp.asarray(patterns, dtype), units)), units)


@jax.jit
def _storkey_weights(xi: Array) -> Array:
  """Storkey's ``W`` (``[n, n]``) from spins ``xi: [P, n]``."""
  n = xi.shape[1]
  off = 1 - jnp.eye(n, dtype=xi.dtype)

  def add(W, x):
    h = W @ x  # [n]; W has a zero diagonal, so h_i leaves out k = i
    H = h[:, None] - W * x[None, :]  # H_ij = h_i - W_ij x_j: also leaves out k = j
    A = x[:, None] * H.T  # A_ij = xi_i h_ji; its transpose is h_ij xi_j, so dW stays symmetric
    dW = (jnp.outer(x, x) - (A + A.T)) / n  # a + b == b + a exactly: symmetric
    return (W + dW) * off, None

  return jax.lax.scan(add, jnp.zeros((n, n), xi.dtype), xi)[0]


def _stored(W: Array, units: U.Units) -> Hopfield:
  """The net of a storage rule's spin couplings ``W``, in the alphabet of ``units``."""
  net = Hopfield(W, jnp.zeros(W.shape[:1], W.dtype), Spin(), tuple((i,) for i in range(len(W))))
  return net if isinstance(units, Spin) else to_binary(net)


def to_binary(net: Hopfield) -> Hopfield:
  """The ``{0, 1}`` net with ``x = (s + 1) / 2`` and the same energy up to a constant.

  Substituting ``s = 2 x - 1`` gives ``W' = 4 W`` and ``theta' = 2 (theta + W 1)``.
  """
  if isinstance(net.units, U.Bernoulli):
    return net
  return net.replace(W=4 * net.W, theta=2 * (net.theta + net.W.sum(1)), units=U.Bernoulli())


def to_spin(net: Hopfield) -> Hopfield:
  """The ``{-1, +1}`` net with ``s = 2 x - 1`` (the inverse of :func:`to_binary`)."""
  if isinstance(net.units, Spin):
    return net
  W = net.W / 4
  return net.replace(W=W, theta=net.theta / 2 - W.sum(1), units=Spin())


def local_field(net: Hopfield, s: Array) -> Array:
  """``h = W s - theta``: ``[..., n] -> [..., n]``."""
  return s @ net.W - net.theta


def energy(net: Hopfield, s: Array) -> Array:
  """``E(s) = -1/2 s^T W s + theta^T s``: ``[..., n] -> [...]``."""
  return -0.5 * jnp.sum((s @ net.W) * s, axis=-1) + s @ net.theta


def overlap(s: Array, patterns: Array) -> Array:
  """Overlaps ``m_mu = (1/n) xi_mu . s`` of spins: ``[..., n], [P, n] -> [..., P]``."""
  return s @ patterns.T / s.shape[-1]


def update_all(net: Hopfield, s: Array) -> Array:
  """Every unit's zero-temperature value at once (a synchronous step): ``[..., n] -> [..., n]``."""
  return _decide(local_field(net, s), s, *net.levels)


def is_fixed_point(net: Hopfield, s: Array) -> Array:
  """Whether no single-unit update changes ``s``: ``[..., n] -> [...]`` bool."""
  return jnp.all(update_all(net, s) == s, axis=-1)


def update_unit(net: Hopfield, s: Array, i) -> Array:
  """The zero-temperature value of unit ``i`` of one state ``s: [n]`` (a scalar)."""
  return _decide(s @ net.W[:, i] - net.theta[i], s[i], *net.levels)


def _decide(h, s, lo, hi):
  """The zero-temperature update: ``hi`` for ``h > 0``, ``lo`` for ``h < 0``, else ``s``."""
  return jnp.where(h > 0, hi, jnp.where(h < 0, lo, s)).astype(s.dtype)
