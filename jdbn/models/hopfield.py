"""Hopfield networks: Hebbian and Storkey storage, zero-temperature and Glauber recall.

A Hopfield net (Hopfield 1982) on ``n`` units ``s`` in ``{-1, +1}`` (or ``{0, 1}``) with
symmetric couplings ``W`` (zero diagonal) and thresholds ``theta`` has the energy

    E(s) = -1/2 s^T W s + theta^T s

and unit ``i`` sees the local field ``h_i = (W s)_i - theta_i``. Asynchronous recall sets one
unit at a time to the state of lower energy, ``s_i <- sign(h_i)`` (a zero field keeps ``s_i``);
since ``W`` is symmetric with zero diagonal, each update changes the energy by ``-|h_i| |ds_i|``,
so the energy never rises and recall stops at a fixed point (a local minimum). Synchronous recall
updates every unit at once; it has no such energy and may end in a 2-cycle (Bruck 1990).

At inverse temperature ``beta`` the net is a Boltzmann machine with the Gibbs measure
``p(s) ∝ exp(-beta E(s))``; Glauber dynamics (:func:`glauber`) draws ``s_i`` from its conditional
``p(s_i = +1 | rest) = sigmoid(2 beta h_i)`` (``sigmoid(beta h_i)`` for ``{0, 1}`` units).
:class:`Hopfield` is a :class:`jdbn.models.base.BlockModel` with one unit per block (or any
partition into uncoupled groups), so :func:`jdbn.samplers.gibbs.chain` samples
``model.tempered(beta)`` too.

Storage: the Hebbian rule ``W = (1/n) sum_mu xi_mu xi_mu^T`` with zero diagonal stores about
``n / (2 ln n)`` random patterns as exact fixed points (McEliece et al. 1987); the Storkey rule
(Storkey 1997) stores about ``n / sqrt(2 ln n)``.

Everything is batched: probes ``[..., n]`` with any leading shape; random update orders take a
key per probe, split from the one key given.

The ``{-1, +1}`` unit family :class:`Spin` lives here (``jdbn.units`` has only ``{0, 1}``
Bernoulli units).

References:
  Hopfield (1982), "Neural networks and physical systems with emergent collective computational
  abilities", PNAS 79.
  Storkey (1997), "Increasing the capacity of a Hopfield network without sacrificing
  functionality", ICANN.
  McEliece, Posner, Rodemich & Venkatesh (1987), "The capacity of the Hopfield associative
  memory", IEEE Trans. Inf. Theory 33.
  Glauber (1963), "Time-dependent statistics of the Ising model", J. Math. Phys. 4.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jdbn import units as U
from jdbn.models import base

Array = jax.Array

__all__ = [
    "Spin", "Hopfield", "Recall", "network", "hebbian", "storkey", "energy", "local_field",
    "update_unit", "async_sweep", "async_recall", "sync_recall", "glauber", "overlap", "is_fixed_point", "to_binary",
    "to_spin", "check_states", "check_patterns"
]


@dataclasses.dataclass(frozen=True)
class Spin(U.Units):
  """Ising spins in ``{-1, +1}``: ``E_x = -a . x``, ``p(x_i = +1 | phi) = sigmoid(2 (a_i + phi_i))``.

  ``E[x_i | phi] = tanh(a_i + phi_i)`` and the log-partition is ``sum_i log(2 cosh(a_i + phi_i))``.
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


# ----------------------------------------------------------------------------- checks


def _concrete(x) -> Optional[np.ndarray]:
  """``x`` as a NumPy array, or ``None`` under tracing (checks are then skipped)."""
  if isinstance(x, jax.core.Tracer):
    return None
  return np.asarray(x)


def check_states(s, units: U.Units, n: int, name: str = "states") -> None:
  """``ValueError`` unless concrete ``s`` is ``[..., n]``, finite and in the units' alphabet."""
  if jnp.ndim(s) < 1 or jnp.shape(s)[-1] != n:
    raise ValueError(f"{name} must have shape [..., {n}], got {jnp.shape(s)}")
  x = _concrete(s)
  if x is None:
    return
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name} contains NaN or inf values")
  lo, hi = _levels(units)
  if not np.all((x == lo) | (x == hi)):
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
  W = (xi.T @ xi) / n * (1 - jnp.eye(n, dtype=dtype))
  net = Hopfield(W, jnp.zeros((n,), dtype), Spin(), tuple((i,) for i in range(n)))
  return net if isinstance(units, Spin) else to_binary(net)


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
  xi = _as_spins(jnp.asarray(patterns, dtype), units)
  n = xi.shape[1]
  off = 1 - jnp.eye(n, dtype=dtype)

  def add(W, x):
    h = W @ x  # [n]; W has a zero diagonal, so h_i leaves out k = i
    H = h[:, None] - W * x[None, :]  # H_ij = h_i - W_ij x_j: also leaves out k = j
    A = x[:, None] * H.T  # A_ij = xi_i h_ji; its transpose is h_ij xi_j, so dW stays symmetric
    dW = (jnp.outer(x, x) - (A + A.T)) / n  # a + b == b + a exactly: symmetric
    return (W + dW) * off, None

  W, _ = jax.lax.scan(add, jnp.zeros((n, n), dtype), xi)
  net = Hopfield(W, jnp.zeros((n,), dtype), Spin(), tuple((i,) for i in range(n)))
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


# ----------------------------------------------------------------------------- energy


def local_field(net: Hopfield, s: Array) -> Array:
  """``h = W s - theta``: ``[..., n] -> [..., n]``."""
  return s @ net.W - net.theta


def energy(net: Hopfield, s: Array) -> Array:
  """``E(s) = -1/2 s^T W s + theta^T s``: ``[..., n] -> [...]``."""
  return -0.5 * jnp.sum((s @ net.W) * s, axis=-1) + s @ net.theta


def overlap(s: Array, patterns: Array) -> Array:
  """Overlaps ``m_mu = (1/n) xi_mu . s`` of spins: ``[..., n], [P, n] -> [..., P]``."""
  return s @ patterns.T / s.shape[-1]


def is_fixed_point(net: Hopfield, s: Array) -> Array:
  """Whether no single-unit update changes ``s``: ``[..., n] -> [...]`` bool."""
  return jnp.all(_decide(local_field(net, s), s, *net.levels) == s, axis=-1)


def update_unit(net: Hopfield, s: Array, i) -> Array:
  """The zero-temperature value of unit ``i`` of one state ``s: [n]`` (a scalar)."""
  return _decide(s @ net.W[:, i] - net.theta[i], s[i], *net.levels)


def _decide(h, s, lo, hi):
  """The zero-temperature update: ``hi`` for ``h > 0``, ``lo`` for ``h < 0``, else ``s``."""
  return jnp.where(h > 0, hi, jnp.where(h < 0, lo, s)).astype(s.dtype)


# ----------------------------------------------------------------------------- recall


class Recall(NamedTuple):
  """The result of a recall, batched like the probes ``[..., n]``.

  Attributes:
    state: ``[..., n]`` the final state.
    n_sweeps: ``[...]`` int32: sweeps (or synchronous steps) run, counting the last one, which
      changed nothing if ``converged``; a probe that is already a fixed point takes 1.
    converged: ``[...]`` bool: whether the final state is a fixed point of the dynamics.
    energies: ``[..., max_sweeps + 1]``: the energy of the probe and after each sweep (repeated
      after convergence) if ``trace`` was asked for, else ``None``.
  """
  state: Array
  n_sweeps: Array
  converged: Array
  energies: Optional[Array] = None


def _iterate(step: Callable, energy_fn: Callable, s0: Array, key: Array, max_sweeps: int,
             trace: bool, changed: Optional[Callable] = None) -> Recall:
  """Runs ``s <- step(s, key_t)`` on one probe until ``s`` stops changing or ``max_sweeps``.

  Sweep ``t`` (from 0) uses ``fold_in(key, t)``, with and without the trace. ``changed(new,
  old)`` says whether a step moved (default: any element differs).
  """
  changed = (lambda new, s: jnp.any(new != s)) if changed is None else changed

  def advance(s, n, done):
    new = step(s, jax.random.fold_in(key, n))
    still = changed(new, s)
    return jnp.where(done, s, new), n + (~done).astype(jnp.int32), done | ~still

  init = (s0, jnp.int32(0), jnp.bool_(False))
  if trace:

    def body(carry, _):
      carry = advance(*carry)
      return carry, energy_fn(carry[0])

    (s, n, done), es = jax.lax.scan(body, init, None, length=max_sweeps)
    return Recall(s, n, done, jnp.concatenate([energy_fn(s0)[None], es]))
  s, n, done = jax.lax.while_loop(lambda c: (~c[2]) & (c[1] < max_sweeps),
                                  lambda c: advance(*c), init)
  return Recall(s, n, done, None)


def _batched(run: Callable, key: Optional[Array], s: Array) -> Recall:
  """``vmap`` of ``run(key, s_row)`` over the leading axes of ``s``, a key per probe."""
  batch = s.shape[:-1]
  flat = s.reshape((-1, s.shape[-1]))
  keys = jax.random.split(jax.random.key(0) if key is None else key, flat.shape[0])
  out = jax.vmap(run)(keys, flat)
  return jax.tree_util.tree_map(lambda x: x.reshape(batch + x.shape[1:]), out)


def _check_run(max_sweeps, order, key):
  if isinstance(max_sweeps, bool) or not isinstance(max_sweeps, (int, np.integer)) or (
      max_sweeps < 1):
    raise ValueError(f"max_sweeps must be an int >= 1, got {max_sweeps!r}")
  if order not in ("random", "fixed"):
    raise ValueError(f"order must be 'random' or 'fixed', got {order!r}")
  if order == "random" and key is None:
    raise ValueError("order='random' needs a PRNG key (or pass order='fixed' with key=None)")


def async_sweep(key: Optional[Array], n: int, update: Callable, s: Array,
                order: str = "random") -> Array:
  """One asynchronous sweep of one probe ``s: [n]``: ``s_i <- update(s, i)`` for each unit.

  The order is a fresh permutation from ``key`` (``order="random"``) or ``0..n-1``. Shared by
  the classical and the dense associative memories.
  """
  idx = jax.random.permutation(key, n) if order == "random" else jnp.arange(n)

  def body(s, i):
    return s.at[i].set(update(s, i)), None

  return jax.lax.scan(body, s, idx)[0]


def async_recall(key: Optional[Array],
                 net: Hopfield,
                 probes: jax.typing.ArrayLike,
                 *,
                 order: str = "random",
                 max_sweeps: int = 100,
                 trace: bool = False) -> Recall:
  """Asynchronous zero-temperature recall: ``s_i <- sign(h_i)`` one unit at a time.

  Each sweep visits every unit once, in a fresh random order per sweep and per probe
  (``order="random"``, from ``key``) or in index order (``order="fixed"``, ``key`` may be
  ``None``), and recall stops at the first sweep that changes nothing (a fixed point: the energy
  never rises and so a fixed point is always reached; ``max_sweeps`` caps the work). One
  ``lax.while_loop`` (``lax.scan`` with ``trace``) of sweeps, each a ``lax.scan`` over units,
  ``vmap``-ed over the probes.

  Args:
    key: PRNG key (``None`` allowed with ``order="fixed"``).
    net: the network.
    probes: ``[..., n]`` initial states in the net's alphabet.
    order: ``"random"`` or ``"fixed"``.
    max_sweeps: the most sweeps per probe (static).
    trace: also return the energy after every sweep (``[..., max_sweeps + 1]``).

  Returns:
    :class:`Recall`.
  """
  _check_run(max_sweeps, order, key)
  check_states(probes, net.units, net.n, "probes")
  key = jax.random.key(0) if key is None else key  # not read with order="fixed"
  return _async_recall(key, net, jnp.asarray(probes, net.W.dtype), order, int(max_sweeps), trace)


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _async_recall(key, net, probes, order, max_sweeps, trace):
  lo, hi = net.levels

  def update(s, i):
    return _decide(s @ net.W[:, i] - net.theta[i], s[i], lo, hi)

  def run(k, s):
    return _iterate(lambda s, k: async_sweep(k, net.n, update, s, order),
                    lambda s: energy(net, s), s, k, max_sweeps, trace)

  return _batched(run, key, probes)


def sync_recall(net: Hopfield,
                probes: jax.typing.ArrayLike,
                *,
                max_steps: int = 100,
                trace: bool = False) -> Recall:
  """Synchronous recall: ``s <- sign(W s - theta)`` for every unit at once (zero field keeps).

  Stops when ``s`` stops changing or after ``max_steps``. The energy :func:`energy` need not
  fall along the way and the dynamics may end in a 2-cycle (then ``converged`` is ``False``);
  the energies are traced all the same.

  Args:
    net: the network.
    probes: ``[..., n]`` initial states.
    max_steps: the most steps (static).
    trace: also return the energy after every step.
  """
  _check_run(max_steps, "fixed", None)
  check_states(probes, net.units, net.n, "probes")
  return _sync_recall(net, jnp.asarray(probes, net.W.dtype), int(max_steps), trace)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _sync_recall(net, probes, max_steps, trace):
  lo, hi = net.levels

  def run(k, s):
    return _iterate(lambda s, _: _decide(local_field(net, s), s, lo, hi),
                    lambda s: energy(net, s), s, k, max_steps, trace)

  return _batched(run, None, probes)


def glauber(key: Array,
            net: Hopfield,
            states: jax.typing.ArrayLike,
            beta: jax.typing.ArrayLike,
            n_sweeps: int,
            *,
            order: str = "random") -> Array:
  """Stochastic recall: ``n_sweeps`` sweeps of Glauber dynamics at inverse temperature ``beta``.

  Unit ``i`` is drawn from its conditional under ``p(s) ∝ exp(-beta E(s))``:
  ``p(s_i = high | rest) = sigmoid(beta (high - low) h_i)``, one unit at a time in a random
  (per sweep and per chain) or fixed order. Either order leaves the Gibbs measure invariant, so
  long runs sample it (Glauber 1963); ``beta -> inf`` is :func:`async_recall`.

  Args:
    key: PRNG key; chain ``c`` uses ``split(key, n_chains)[c]`` and sweep ``t`` of it
      ``fold_in`` of that with ``t``.
    net: the network.
    states: ``[..., n]`` initial states.
    beta: inverse temperature (scalar, may be traced).
    n_sweeps: number of sweeps (static).
    order: ``"random"`` or ``"fixed"``.

  Returns:
    ``[..., n]`` the final states.
  """
  if isinstance(n_sweeps, bool) or not isinstance(n_sweeps, (int, np.integer)) or n_sweeps < 0:
    raise ValueError(f"n_sweeps must be an int >= 0, got {n_sweeps!r}")
  _check_run(1, order, key)
  check_states(states, net.units, net.n, "states")
  states = jnp.asarray(states, net.W.dtype)
  beta = jnp.asarray(beta, net.W.dtype)
  if _concrete(beta) is not None and not np.isfinite(np.asarray(beta)):
    raise ValueError(f"beta must be finite, got {beta}")
  return _glauber(key, net, states, beta, int(n_sweeps), order)


@functools.partial(jax.jit, static_argnums=(4, 5))
def _glauber(key, net, states, beta, n_sweeps, order):

  def run(k, s):

    def sweep(s, t):
      kt = jax.random.fold_in(k, t)
      ko, ku = jax.random.split(kt)
      idx = jax.random.permutation(ko, net.n) if order == "random" else jnp.arange(net.n)
      us = jax.random.split(ku, net.n)

      def body(s, iu):
        i, u = iu
        phi = beta * (s @ net.W[:, i])
        return s.at[i].set(net.units.sample(u, phi, -beta * net.theta[i])), None

      return jax.lax.scan(body, s, (idx, us))[0], None

    return jax.lax.scan(sweep, s, jnp.arange(n_sweeps))[0]

  batch = states.shape[:-1]
  flat = states.reshape((-1, net.n))
  keys = jax.random.split(key, flat.shape[0])
  return jax.vmap(run)(keys, flat).reshape(batch + (net.n,))
