"""Parallel tempering (replica exchange) for any block model.

``M`` replicas of a batch of chains run at inverse temperatures ``1 = beta_1 > ... > beta_M``,
replica ``m`` sampling the model's tempered copy ``p_{beta_m}`` (:meth:`BlockModel.tempered`: for
zero base biases ``p^beta``, the same model with every coupling and bias scaled by ``beta``). A
step is one Gibbs sweep of every replica (one ``jax.vmap`` over the replicas, so each half-sweep
is one batched matrix product) followed by Metropolis swaps between neighbouring replicas, the
pairs ``(1, 2), (3, 4), ...`` and ``(2, 3), (4, 5), ...`` in alternate steps (Swendsen & Wang 1986;
Desjardins, Courville, Bengio, Vincent & Delalleau 2010 for RBM training). The swap of the states
``x_m`` and ``x_{m+1}`` is accepted with probability

    min(1, f_m(x_{m+1}) f_{m+1}(x_m) / (f_m(x_m) f_{m+1}(x_{m+1}))),   log f_m = -E_{beta_m},

so every replica's distribution stays invariant, and the hot replicas carry the cold one across
the energy barriers that a single Gibbs chain cannot cross. Replica 0 (``beta = 1``) is the
sample of the model. The kernel has the blackjax shape ``step(key, model, state, betas) ->
(state, info)``; the swap counts ride in the state so that a persistent chain keeps its rates.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jdbn.models import base
from jdbn.samplers import gibbs as G

Array = jax.Array


class TemperingState(NamedTuple):
  """Replicas and their swap statistics.

  Attributes:
    states: one array ``[M, ..., size_i]`` per block, replica ``m`` at ``betas[m]``.
    parity: int32 scalar, which neighbour pairs the next step offers to swap (0: ``(0, 1), (2,
      3), ...``; 1: ``(1, 2), (3, 4), ...``).
    attempts: ``[M - 1]`` swaps offered between replicas ``m`` and ``m + 1`` so far (per chain).
    accepted: ``[M - 1]`` swaps accepted so far (summed over chains, divided by their number).
  """
  states: tuple
  parity: Array
  attempts: Array
  accepted: Array

  @property
  def swap_rates(self) -> Array:
    """``[M - 1]`` accepted / offered swaps between neighbours (NaN where none was offered)."""
    return self.accepted / self.attempts


class TemperingInfo(NamedTuple):
  """Diagnostics of one step.

  Attributes:
    accept_prob: ``[M - 1]`` mean Metropolis acceptance probability of the offered pairs (NaN
      for the pairs not offered this step).
    swapped: ``[M - 1]`` fraction of chains that swapped (0 for pairs not offered).
  """
  accept_prob: Array
  swapped: Array


def ladder(n_replicas: int, beta_min: float = 0.1, *, spacing: str = "geometric") -> np.ndarray:
  """``n_replicas`` inverse temperatures from 1 down to ``beta_min``, geometric or linear."""
  if isinstance(n_replicas, bool) or not isinstance(n_replicas, (int, np.integer)) or \
     n_replicas < 1:
    raise ValueError(f"n_replicas must be a positive int, got {n_replicas!r}")
  if not 0 < beta_min <= 1:
    raise ValueError(f"beta_min must lie in (0, 1], got {beta_min!r}")
  if spacing == "geometric":
    return np.geomspace(1.0, beta_min, n_replicas).astype(np.float32)
  if spacing == "linear":
    return np.linspace(1.0, beta_min, n_replicas).astype(np.float32)
  raise ValueError(f"spacing must be 'geometric' or 'linear', got {spacing!r}")


def check_betas(betas) -> None:
  """``ValueError`` unless ``betas`` is 1-D, starts at 1 and decreases strictly within (0, 1]."""
  if isinstance(betas, jax.core.Tracer):
    return
  b = np.asarray(betas, np.float64)
  if b.ndim != 1 or b.size < 1 or not np.all(np.isfinite(b)):
    raise ValueError(f"betas must be a finite 1-D array, got shape {b.shape}")
  if b[0] != 1 or np.any(np.diff(b) >= 0) or b[-1] <= 0:
    raise ValueError(f"betas must start at 1 and decrease strictly, staying above 0; got {b}")


def init(states: Sequence[Array], n_replicas: int) -> TemperingState:
  """Replicas that start from ``states`` (one array ``[..., size_i]`` per block, or already
  ``[M, ..., size_i]`` if the leading axis is ``n_replicas``; see :func:`init_random`)."""
  states = tuple(jnp.broadcast_to(s, (n_replicas,) + jnp.shape(s)) for s in states)
  zeros = jnp.zeros((max(n_replicas - 1, 0),), jnp.float32)
  return TemperingState(states, jnp.int32(0), zeros, zeros)


def init_random(key: Array, model: base.BlockModel, n_replicas: int,
                n_chains: Optional[int] = None) -> TemperingState:
  """Every replica's chains drawn independently from the model's base rates."""
  keys = jax.random.split(key, n_replicas)
  states = jax.vmap(lambda k: G.init_random(k, model, n_chains))(keys)
  zeros = jnp.zeros((max(n_replicas - 1, 0),), jnp.float32)
  return TemperingState(tuple(states), jnp.int32(0), zeros, zeros)


def _replicas(model: base.BlockModel, betas: Array, base_biases) -> base.BlockModel:
  """The tempered copies, stacked: every array leaf gets a leading ``[M]`` axis."""
  return jax.vmap(lambda b: model.tempered(b, base_biases))(betas)


def _base_self_energy(model: base.BlockModel, states, base_biases) -> Array:
  """``E_base(x)``: the self energies with the base biases (zeros where none is given)."""
  spec = base.per_block(model, base_biases, "base_biases")
  total = 0.0
  for i, (blk, x) in enumerate(zip(model.blocks, states)):
    a0 = jnp.zeros((blk.size,), model.bias(i).dtype) if spec[i] is None else spec[i]
    total = total + blk.units.energy(x, a0, model.log_sigma(i))
  return total


def energy_gap(model: base.BlockModel, states, base_biases: Any = None) -> Array:
  """``D(x) = E(x) - E_base(x)``, what the swaps compare: ``-> [...]``.

  The tempered energies are ``E_beta = beta E + (1 - beta) E_base`` up to a constant in ``x``
  (:meth:`~jdbn.models.base.BlockModel.tempered`), so the log acceptance of swapping replicas
  ``m`` and ``m + 1`` is ``(beta_m - beta_{m+1}) (D(x_m) - D(x_{m+1}))``.
  """
  return model.energy(states) - _base_self_energy(model, states, base_biases)


def _gap_from_fields(model: base.BlockModel, states, fields, beta: Array, base_biases,
                     last: Sequence[int]) -> Array:
  """``D(x)`` of one replica from the fields its sweep drew the last group from.

  With two groups every coupling joins them, so the interaction energy is ``-sum_{i in last}
  s_i . phi_i``; the tempered fields are ``beta`` times the model's, so ``E(x) = sum_i E_i(x_i) -
  sum_{i in last} s_i . phi_i / beta``: no matrix product beyond the sweep's own.
  """
  self_e = 0.0
  for i, (blk, x) in enumerate(zip(model.blocks, states)):
    self_e = self_e + blk.units.energy(x, model.bias(i), model.log_sigma(i))
  inter = 0.0
  for i in last:
    s_i = model.blocks[i].units.scaled(states[i], model.log_sigma(i))
    inter = inter + jnp.sum(s_i * fields[i], axis=-1)
  return self_e - inter / beta - _base_self_energy(model, states, base_biases)


def swap(key: Array, betas: Array, gaps: Array, states: tuple, parity: Array
         ) -> tuple[tuple, Array, Array]:
  """Metropolis swaps between the neighbours that ``parity`` offers.

  Args:
    key: PRNG key.
    betas: ``[M]`` inverse temperatures.
    gaps: ``[M, ...]`` :func:`energy_gap` of every replica's state.
    states: one array ``[M, ..., size_i]`` per block.
    parity: 0 or 1 (see :class:`TemperingState`).

  Returns:
    ``(states, accept_prob, accepted)``: the states after the swaps, ``[M - 1, ...]``
    acceptance probabilities and ``[M - 1, ...]`` booleans (False for pairs not offered).
  """
  n = states[0].shape[0]
  d_beta = (betas[:-1] - betas[1:]).reshape((n - 1,) + (1,) * (gaps.ndim - 1))
  log_a = d_beta * (gaps[:-1] - gaps[1:])
  offered = (jnp.arange(n - 1) % 2 == parity).reshape((n - 1,) + (1,) * (log_a.ndim - 1))
  u = jax.random.uniform(key, log_a.shape, log_a.dtype)
  accepted = offered & (jnp.log(u) < log_a)
  acc = accepted.astype(jnp.int32)
  pad = jnp.zeros((1,) + acc.shape[1:], jnp.int32)
  # replica m takes m + 1's state if the pair (m, m+1) swaps, m - 1's if (m - 1, m) does.
  perm = (jnp.arange(n).reshape((n,) + (1,) * (acc.ndim - 1)) +
          jnp.concatenate([acc, pad]) - jnp.concatenate([pad, acc]))
  out = tuple(jnp.take_along_axis(s, jnp.broadcast_to(perm[..., None], s.shape), axis=0)
              for s in states)
  return out, jnp.minimum(1.0, jnp.exp(log_a)), accepted


def step(key: Array, model: base.BlockModel, state: TemperingState, betas: Array, *,
         base_biases: Any = None) -> tuple[TemperingState, TemperingInfo]:
  """One parallel-tempering step: a Gibbs sweep of every replica, then neighbour swaps.

  For a two-group schedule (RBMs, DBMs, bipartite graphs) the swaps' energies come from the
  fields of the sweep itself (:func:`_gap_from_fields`), so a step with ``M`` replicas costs
  about ``M`` sweeps; otherwise each replica's energy is evaluated (:func:`energy_gap`).

  Args:
    key: PRNG key (split into the sweeps' and the swaps' keys).
    model: any block model.
    state: a :class:`TemperingState` with ``M = len(betas)`` replicas.
    betas: ``[M]`` inverse temperatures, ``betas[0] = 1`` (see :func:`ladder`).
    base_biases: the tempered copies' base biases, ``{block: [size]}`` or one entry per block
      (default none: ``p^beta``).

  Returns:
    ``(state, TemperingInfo)``.
  """
  betas = jnp.asarray(betas, model.bias(0).dtype)
  n = betas.shape[0]
  if state.states[0].shape[0] != n:
    raise ValueError(f"the state has {state.states[0].shape[0]} replicas for {n} temperatures")
  if base_biases is not None:
    base_biases = base.per_block(model, base_biases, "base_biases")
  models = _replicas(model, betas, base_biases)
  k_sweep, k_swap = jax.random.split(key)
  states, info = jax.vmap(lambda m, k, s: G.step(k, m, s))(
      models, jax.random.split(k_sweep, n), tuple(state.states))
  if n == 1:
    return state._replace(states=states), TemperingInfo(jnp.zeros((0,)), jnp.zeros((0,)))
  last = model.schedule[-1]
  if len(model.schedule) == 2 and all(info.fields[i] is not None for i in last):
    gaps = jax.vmap(lambda s, f, b: _gap_from_fields(model, s, f, b, base_biases, last))(
        states, info.fields, betas)
  else:
    gaps = jax.vmap(lambda s: energy_gap(model, s, base_biases))(states)
  states, prob, accepted = swap(k_swap, betas, gaps, states, state.parity)
  offered = jnp.arange(n - 1) % 2 == state.parity
  axes = tuple(range(1, prob.ndim))
  info = TemperingInfo(jnp.where(offered, jnp.mean(prob, axis=axes), jnp.nan),
                       jnp.mean(accepted.astype(prob.dtype), axis=axes))
  new = TemperingState(states, 1 - state.parity, state.attempts + offered.astype(jnp.float32),
                       state.accepted + info.swapped)
  return new, info


def chain(key: Array, model: base.BlockModel, state: TemperingState, betas: Array,
          n_steps: int, *, base_biases: Any = None) -> TemperingState:
  """``n_steps`` :func:`step` s in one ``lax.scan``; ``state.states[i][0]`` is the model's sample."""
  if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
    raise ValueError(f"n_steps must be a non-negative int, got {n_steps!r}")

  def body(s, k):
    return step(k, model, s, betas, base_biases=base_biases)[0], None

  state, _ = jax.lax.scan(body, state, jax.random.split(key, n_steps))
  return state
