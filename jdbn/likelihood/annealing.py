"""Annealed importance sampling for any block model, through its tempered copy.

AIS (Neal 2001) estimates ``Z`` of ``p(x) ∝ exp(-E(x))`` by moving independent runs through a
sequence of distributions ``p_beta`` from a tractable base ``p_0`` to ``p_1 = p``. Here ``p_beta``
is the model's own :meth:`~jdbn.models.base.BlockModel.tempered` copy: couplings ``beta W`` and
biases ``(1 - beta) a_0 + beta a``, so ``p_0`` has independent blocks with biases ``a_0``
(``base_biases``) and ``log Z_0`` in closed form. Transitions are sweeps of the generic Gibbs
kernel (:func:`jdbn.samplers.gibbs.step`) of ``p_beta``, which leave ``p_beta`` invariant. The
weight of a run is

    log w = sum_k log f_{beta_{k+1}}(x_k) - log f_{beta_k}(x_k),   E[w] = Z / Z_0,

with ``log f_beta = -F_beta`` the unnormalised marginal of the blocks that are not summed out
(:func:`jdbn.models.base.free_energy` of one schedule group: an RBM's hidden layer, a DBM's odd
layers, as Salakhutdinov & Hinton 2009 do), which lowers the variance against the joint energy.

This module also holds what every AIS here shares: the temperature schedule of Salakhutdinov &
Murray (2008) and :class:`AISResult` with its ±3 standard-error bounds. RBMs have a faster path in
:mod:`jdbn.likelihood.rbm` (the field ``v W`` shared between temperatures: two matrix products a
temperature); :func:`jdbn.likelihood.ais` picks it for an RBM and this one for any other model.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from jdbn.models import base as B
from jdbn.samplers import gibbs as G

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


def default_betas(dtype=np.float32) -> np.ndarray:
  """The inverse temperatures of Salakhutdinov & Murray (2008), section 4.1.

  Steps of 1e-3 on [0, 0.5], 1e-4 on [0.5, 0.9] and 1e-5 on [0.9, 1]: 14,501 values from 0 to 1,
  that is 14,500 annealing steps (importance-weight factors), the "14,500 intermediate
  distributions" of the paper. (Their Matlab code writes ``[0:1/1000:0.5 0.5:1/10000:0.9
  0.9:1/100000:1.0]``, which repeats 0.5 and 0.9; a repeated value is an idle step.)

  Returns:
    ``[14501]`` increasing array with ``betas[0] = 0`` and ``betas[-1] = 1``.
  """
  return np.concatenate([
      np.linspace(0.0, 0.5, 501),
      np.linspace(0.5, 0.9, 4001)[1:],
      np.linspace(0.9, 1.0, 10001)[1:],
  ]).astype(dtype)


def check_betas(betas) -> None:
  if isinstance(betas, jax.core.Tracer):
    return
  b = np.asarray(betas, np.float64)
  if b.ndim != 1 or b.shape[0] < 2:
    raise ValueError(f"betas must be a 1-D array of at least 2 values, got shape {b.shape}")
  if b[0] != 0 or b[-1] != 1:
    raise ValueError(f"betas must run from 0 to 1, got {b[0]:g} ... {b[-1]:g}")
  if np.any(np.diff(b) < 0) or not np.all(np.isfinite(b)):
    raise ValueError("betas must be finite and non-decreasing")


class AISResult(NamedTuple):
  """The result of :func:`ais`.

  Attributes:
    log_z: ``log Z_0 + log mean_i w_i``, the AIS estimate of ``log Z``. ``mean w`` is unbiased for
      ``Z / Z_0``, so this underestimates ``log Z`` in expectation.
    log_z_lower: ``log Z_0 + log(mean w - 3 se)``, ``se = std(w) / sqrt(n_chains)``; ``-inf`` where
      ``mean w - 3 se <= 0`` (Salakhutdinov & Murray 2008 report ``ln(Z_hat -/+ 3 sigma_hat)``).
    log_z_upper: ``log Z_0 + log(mean w + 3 se)``.
    ess: effective sample size ``(sum w)^2 / sum w^2``, between 1 and ``n_chains``.
    log_w: ``[n_chains]`` log importance weights (relative to the base model).
    log_z_base: ``log Z_0`` of the base model.
  """
  log_z: Array
  log_z_lower: Array
  log_z_upper: Array
  ess: Array
  log_w: Array
  log_z_base: Array


def summarise(log_w: Array, log_z_base: Array) -> AISResult:
  n = log_w.shape[0]
  m = jnp.max(log_w)
  w = jnp.exp(log_w - m)
  mean = jnp.mean(w)
  se = jnp.std(w) / jnp.sqrt(n)
  lower = mean - 3 * se
  log_lower = jnp.where(lower > 0, jnp.log(jnp.where(lower > 0, lower, 1.0)) + m, -jnp.inf)
  ess = jnp.exp(2 * jax.nn.logsumexp(log_w) - jax.nn.logsumexp(2 * log_w))
  return AISResult(
      log_z=jnp.log(mean) + m + log_z_base,
      log_z_lower=log_lower + log_z_base,
      log_z_upper=jnp.log(mean + 3 * se) + m + log_z_base,
      ess=ess,
      log_w=log_w,
      log_z_base=log_z_base,
  )


_check_betas = check_betas  # the name jdbn.parallel and older callers use


# ----------------------------------------------------------------------------- any block model


def base_rates(model: B.BlockModel, data: dict[Union[int, str], ArrayLike], *,
               eps: float = 1e-3) -> tuple[Optional[Array], ...]:
  """Base-model biases matching the data's marginals, one entry per block (None where no data).

  ``data`` maps a block (index or name) to its observed states ``[n, size]`` (e.g. ``{"v":
  train_x}``); each family sets its biases so that the independent base model has the data's
  means (:meth:`jdbn.units.Units.base_rate`; Salakhutdinov & Murray 2008, section 4.1).
  """
  out = [None] * len(model.blocks)
  for name, x in data.items():
    i = B.block_index(model, name)
    blk = model.blocks[i]
    x = jnp.asarray(x, model.bias(i).dtype)
    if x.ndim < 1 or x.shape[-1] != blk.size or x.size == 0:
      raise ValueError(f"data for block {blk.name!r} must have shape [n, {blk.size}] with n >= 1, "
                       f"got {tuple(x.shape)}")
    if not bool(jnp.all(jnp.isfinite(x))):
      raise ValueError(f"data for block {blk.name!r} holds NaN or infinite values")
    out[i] = blk.units.base_rate(jnp.mean(x.reshape(-1, blk.size), axis=0), eps)
  return tuple(out)


def model_base_log_z(model: B.BlockModel, base_biases: Sequence[Optional[Array]]) -> Array:
  """``log Z_0`` of ``model.tempered(0, base_biases)``: a sum of independent blocks' terms."""
  model0 = model.tempered(0.0, base_biases)
  total = 0.0
  for i, blk in enumerate(model0.blocks):
    a = model0.bias(i)
    total = total + blk.units.log_partition(jnp.zeros((blk.size,), a.dtype), a,
                                            model0.log_sigma(i))
  return total


def _log_f(model: B.BlockModel, base_biases, beta: Array, states,
           summed: tuple[int, ...]) -> Array:
  """``log f_beta`` of the states: minus the tempered model's (free) energy, ``-> [n_chains]``."""
  tempered = model.tempered(beta, base_biases)
  if not summed:
    return -tempered.energy(states)
  return -B.free_energy(tempered, states, summed)


def _anneal(key: Array, model: B.BlockModel, base_biases, states, log_w: Array, betas: Array,
            summed: tuple[int, ...], n_sweeps: int) -> tuple[Any, Array]:
  """Runs the chains through ``T_{beta_0} .. T_{beta_{K-1}}`` accumulating the log weights.

  ``log_w`` is summed with Kahan compensation in one ``lax.scan`` (as in the RBM path).
  """

  def body(carry, xs):
    states, total, comp = carry
    k, beta, beta_next = xs
    tempered = model.tempered(beta, base_biases)
    for k_sweep in jax.random.split(k, n_sweeps):
      states, _ = G.step(k_sweep, tempered, states)
    y = (_log_f(model, base_biases, beta_next, states, summed) -
         _log_f(model, base_biases, beta, states, summed)) - comp
    t = total + y
    comp = (t - total) - y
    return (states, t, comp), None

  n_steps = betas.shape[0] - 1
  init = (states, log_w, jnp.zeros_like(log_w))
  (states, total, comp), _ = jax.lax.scan(
      body, init, (jax.random.split(key, n_steps), betas[:-1], betas[1:]))
  return states, total - comp


@functools.partial(jax.jit, static_argnames=("n_chains", "summed", "n_sweeps"))
def _ais_model(key: Array, model: B.BlockModel, base_biases, betas: Array, n_chains: int,
               summed: tuple[int, ...], n_sweeps: int) -> AISResult:
  dtype = model.bias(0).dtype
  # The sweep at beta_0 = 0 ignores its starting state (the tempered couplings are zero), so it
  # draws the exact base samples the runs start from.
  states = tuple(jnp.zeros((n_chains, blk.size), dtype) for blk in model.blocks)
  _, log_w = _anneal(key, model, base_biases, states, jnp.zeros((n_chains,), dtype), betas,
                     summed, n_sweeps)
  return summarise(log_w, model_base_log_z(model, base_biases))


def _resolve_summed(model: B.BlockModel, summed) -> tuple[int, ...]:
  if isinstance(summed, str) and summed == "first":
    return tuple(model.schedule[0])
  if summed is None:
    return ()
  if isinstance(summed, (int, str, np.integer)):
    summed = (summed,)
  idx = tuple(sorted(B.block_index(model, s) for s in summed))
  if len(set(idx)) != len(idx) or not any(set(idx) <= set(g) for g in model.schedule):
    raise ValueError(f"summed={summed!r} must be blocks of one schedule group (conditionally "
                     f"independent given the rest); the schedule of {type(model).__name__} is "
                     f"{model.schedule} over blocks {[b.name for b in model.blocks]}")
  return idx


def _resolve_base_biases(model: B.BlockModel, base_biases) -> tuple[Optional[Array], ...]:
  spec = B.per_block(model, base_biases, "base_biases")
  out = []
  for i, (blk, a) in enumerate(zip(model.blocks, spec)):
    if a is None:
      out.append(None)
      continue
    a = jnp.asarray(a, model.bias(i).dtype)
    if a.shape != (blk.size,):
      raise ValueError(f"base biases of block {blk.name!r} must have shape [{blk.size}], got "
                       f"{tuple(a.shape)}")
    out.append(a)
  return tuple(out)


def ais_model(key: Array,
              model: B.BlockModel,
              *,
              n_chains: int = 100,
              betas: Optional[ArrayLike] = None,
              base_biases: Any = None,
              summed: Any = "first",
              n_sweeps: int = 1) -> AISResult:
  """AIS estimate of ``log Z`` for any block model (see the module docstring).

  One jitted ``lax.scan`` over temperatures, the ``n_chains`` runs batched ``[n_chains, size_i]``
  in every block; ``jax.vmap`` or :mod:`jdbn.parallel` spread more runs.

  Args:
    key: PRNG key.
    model: any :class:`~jdbn.models.base.BlockModel` (an RBM, a DBM, a Boltzmann machine ...).
    n_chains: independent runs (static).
    betas: ``[K + 1]`` non-decreasing inverse temperatures from 0 to 1; default
      :func:`default_betas` (14,500 steps).
    base_biases: the base model's biases: ``None`` (zeros everywhere), a dict ``{block: [size]}``
      or one entry (array or None) per block; :func:`base_rates` makes them from data.
    summed: blocks summed out of the weights (one schedule group or part of one, by index or
      name); ``"first"`` (default) takes the schedule's first group (an RBM's hidden layer, a
      DBM's odd layers); ``None`` weighs the joint energy.
    n_sweeps: Gibbs sweeps per temperature (static).

  Returns:
    An :class:`AISResult`.
  """
  if not isinstance(model, B.BlockModel):
    raise TypeError(f"ais needs a block model (jdbn.models.base.BlockModel), got "
                    f"{type(model).__name__}")
  if not isinstance(n_chains, int) or n_chains < 1:
    raise ValueError(f"n_chains must be a positive int, got {n_chains!r}")
  if not isinstance(n_sweeps, int) or n_sweeps < 1:
    raise ValueError(f"n_sweeps must be a positive int, got {n_sweeps!r}")
  betas = default_betas() if betas is None else betas
  check_betas(betas)
  summed = _resolve_summed(model, summed)
  base = _resolve_base_biases(model, base_biases)
  return _ais_model(key, model, base, jnp.asarray(betas, model.bias(0).dtype), n_chains, summed,
                    n_sweeps)
