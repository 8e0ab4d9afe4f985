"""The phases of a contrastive update, as small pure pieces that :mod:`jdbn.contrastive` composes.

A contrastive update estimates the log-likelihood gradient ``-<dE/dtheta>_data +
<dE/dtheta>_model`` from two sets of states:

* the **positive phase** (``(key, params, batch) -> Positive``) fills the model's hidden blocks
  for the data: exactly (an RBM's free energy needs none, so :func:`sampled_hidden` only draws
  ``h`` for diagnostics), by a first Gibbs sweep (:func:`sweep_from_data`, CD), or by mean-field
  or clamped Gibbs iterations for models whose posterior is intractable (:func:`clamped`, DBMs
  and Boltzmann machines with hidden units);
* the **negative phase** (a :class:`NegativePhase`) draws the model's samples: CD chains that
  continue from the data (:func:`from_data`), persistent chains (:func:`persistent`) or
  persistent parallel-tempering replicas (:func:`tempering`), or fast PCD's chains with their
  fast weights (:func:`fast_persistent`);
* the **score** ``(params, states) -> [batch]`` is the energy the surrogate differences: the free
  energy of the data block (:func:`free_energy_score`) where the rest can be summed out, the
  energy of the full state (:func:`energy_score`) otherwise.

Every piece here speaks the block-model interface (:mod:`jdbn.models.base`) and the generic
sampler (:mod:`jdbn.samplers.gibbs`); the RBM pieces reproduce jdbn's CD-k and PCD exactly.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdbn import gibbs
from jdbn.models import base
from jdbn.models import rbm as R
from jdbn.samplers import gibbs as G
from jdbn.samplers import tempering as T

Array = jax.Array


class Positive(NamedTuple):
  """What a positive phase returns.

  Attributes:
    states: the data's states with every block filled (block 0 the data, the others sampled or
      mean-field), one array per block.
    start: a chain state the negative phase may continue from (CD's first sweep), or ``None``.
  """
  states: Any
  start: Any = None


class NegativePhase(NamedTuple):
  """A negative phase: how the model's samples are drawn.

  Attributes:
    init: ``(key, params) -> chains``, the persistent state (``None`` for CD).
    sample: ``(key, params, chains, positive) -> (chains, states)``: the new persistent state and
      the negative states, one array per block.
    learn: optional ``(grads, chains) -> chains``, called with the update's gradient after the
      update (fast PCD's fast weights learn from it).
  """
  init: Callable[..., Any]
  sample: Callable[..., tuple[Any, Any]]
  learn: Optional[Callable[..., Any]] = None


class Phases(NamedTuple):
  """The pieces of a contrastive update (see the module docstring).

  Attributes:
    positive: ``(key, params, batch) -> Positive``.
    negative: a :class:`NegativePhase`.
    score: ``(params, states) -> [batch]``, the energy whose data-minus-samples mean is the
      surrogate loss (its gradient is the likelihood gradient's estimate).
    penalty: optional ``(params, positive) -> scalar`` added to the loss (e.g. sparsity).
    after: optional ``(params, positive) -> params`` applied after each update, outside the
      gradient (a centered model's offsets move there).
  """
  positive: Callable[..., Positive]
  negative: NegativePhase
  score: Callable[..., Array]
  penalty: Optional[Callable[..., Array]] = None
  after: Optional[Callable[..., Any]] = None


class FastChains(NamedTuple):
  """Fast PCD's persistent state: the chains and the fast parameters that only they see.

  Attributes:
    chains: the persistent chains.
    fast: the fast parameters, a pytree like the model's params (zeros at the start).
    opt_state: the fast optimizer's state.
  """
  chains: Any
  fast: Any
  opt_state: Any


def mean_mask(mean_visible):
  """``mean_visible`` as ``None``, ``True`` or a 1-D boolean numpy mask (static, hashable use)."""
  if mean_visible is None or mean_visible is False:
    return None
  if mean_visible is True:
    return True
  mask = np.asarray(mean_visible)
  if mask.dtype != np.bool_ or mask.ndim != 1:
    raise ValueError("mean_visible must be True, False, None or a 1-D boolean mask over the "
                     f"visible units, got {mask.dtype} of shape {mask.shape}")
  return mask if mask.any() else None


def sparsity_penalty(params: R.RBM, data: Array, target: float) -> Array:
  q = jnp.clip(jnp.mean(R.hidden_mean(params, data), axis=0), 1e-6, 1 - 1e-6)
  return -jnp.sum(target * jnp.log(q) + (1 - target) * jnp.log1p(-q))


# ----------------------------------------------------------------------------- any block model


def energy_score(params: base.BlockModel, states) -> Array:
  """The score of full states: the model's energy ``E(x)`` (DBMs, lateral BMs)."""
  return params.energy(states)


def clamped(n_steps: int, *, mean_field: bool = True,
            init: Optional[Callable[..., Any]] = None) -> Callable[..., Positive]:
  """A positive phase for any block model: block 0 clamped to the data, the rest inferred.

  Runs ``n_steps`` sweeps of :func:`jdbn.samplers.gibbs.step` with the data block clamped.
  With ``mean_field=True`` every other block takes its conditional mean, so the sweeps are the
  fixed-point iteration of the factorised mean-field posterior ``q(h)`` (Salakhutdinov & Hinton
  2009, section 3) and need no randomness; otherwise they are Gibbs sweeps of ``p(h | data)``.
  The free blocks start at ``init(params, batch)`` (default: zeros).
  """
  if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
    raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")

  def positive(key, params, batch):
    if init is not None:
      states = tuple(init(params, batch))
    else:
      lead = batch.shape[:-1]
      states = (batch,) + tuple(jnp.zeros(lead + (b.size,), batch.dtype)
                                for b in params.blocks[1:])
    hidden = {i: True for i in range(1, len(params.blocks))} if mean_field else None
    states, _ = G.chain(key, params, states, int(n_steps), clamp={0: True}, mean_field=hidden)
    return Positive(states)

  return positive


def summed_score(summed=(1,)) -> Callable[..., Array]:
  """The score ``F(x_{-S})`` with the blocks ``summed`` marginalised
  (:func:`jdbn.models.base.free_energy`): an RBM-shaped model's free energy of ``v``."""
  summed = tuple(summed)
  return lambda params, states: base.free_energy(params, states, summed)


def sampled(key: Array, params: base.BlockModel, batch: Array) -> Positive:
  """A positive phase for any block model: block 0 clamped to the data, one Gibbs sweep draws
  the rest (for RBM-shaped models, ``h ~ p(h | data)``); the states also start CD's chains."""
  lead = batch.shape[:-1]
  states = (batch,) + tuple(jnp.zeros(lead + (b.size,), batch.dtype) for b in params.blocks[1:])
  states, _ = G.step(key, params, states, clamp={0: True})
  return Positive(states, states)


def chains_from_positive(k: int) -> NegativePhase:
  """CD-k's negative phase for any block model: ``k`` sweeps from the positive phase's states."""

  def sample(key, params, chains, pos):
    del chains
    out, _ = G.chain(key, params, pos.start, k)
    return None, out

  return NegativePhase(lambda key, params: None, sample)


# ----------------------------------------------------------------------------- RBM phases


def free_energy_score(params: R.RBM, states) -> Array:
  """The score of an RBM's states: the free energy ``F(v)`` of the visible block."""
  return R.free_energy(params, states[0])


def sweep_from_data(mean_visible=None) -> Callable[..., Positive]:
  """CD's positive phase: the first Gibbs sweep of a chain started at the data.

  ``h_0 ~ p(h | data)`` are the data's hidden states (the reconstruction diagnostic uses them),
  and the sweep's ``v_1 ~ p(v | h_0)`` (or its mean on the ``mean_visible`` units) is where
  :func:`from_data` continues.
  """
  mask = mean_mask(mean_visible)

  def positive(key, params, batch):
    _check_mean_mask(mask, params)
    first = G.step(key, params, gibbs.init(params, batch), mean_field={0: mask})[0]
    return Positive(gibbs.ChainState(batch, first.h), first)

  return positive


def sampled_hidden(key: Array, params: R.RBM, batch: Array) -> Positive:
  """PCD's positive phase: the data with ``h ~ p(h | data)`` (for the diagnostics only)."""
  return Positive(gibbs.ChainState(batch, R.sample_hidden(key, params, batch)))


def from_data(k: int, mean_visible=None) -> NegativePhase:
  """CD-k's negative phase: ``k - 1`` sweeps after the positive phase's first one."""
  mask = mean_mask(mean_visible)

  def sample(key, params, chains, pos):
    del chains
    out, _ = gibbs.chain(key, params, pos.start, k - 1, mean_visible=mask)
    return None, out

  return NegativePhase(lambda key, params: None, sample)


def persistent(k: int, n_chains: int, init: Optional[Callable[..., Any]] = None) -> NegativePhase:
  """PCD's negative phase: ``n_chains`` persistent chains advance ``k`` sweeps per update.

  Args:
    k: sweeps per update.
    n_chains: number of chains.
    init: ``(key, params, n_chains) -> state``; default :func:`jdbn.gibbs.init_random` for RBMs
      and :func:`jdbn.samplers.gibbs.init_random` for other block models.
  """

  def start(key, params):
    if init is not None:
      return init(key, params, n_chains)
    if isinstance(params, R.RBM):
      return gibbs.init_random(key, params, n_chains)
    return G.init_random(key, params, n_chains)

  def sample(key, params, chains, pos):
    del pos
    chains, _ = G.chain(key, params, chains, k)
    return chains, chains

  return NegativePhase(start, sample)


def tempering(betas, k: int, n_chains: int) -> NegativePhase:
  """Parallel tempering's negative phase (Desjardins et al. 2010): ``n_chains`` persistent chains
  at every inverse temperature of ``betas`` (``betas[0] = 1``), ``k`` steps of
  :func:`jdbn.samplers.tempering.step` per update; the ``beta = 1`` replica gives the negatives.
  The chains are a :class:`~jdbn.samplers.tempering.TemperingState` (``.swap_rates``)."""
  betas = np.asarray(betas, np.float32)
  T.check_betas(betas)

  def start(key, params):
    return T.init_random(key, params, len(betas), n_chains)

  def sample(key, params, chains, pos):
    del pos
    chains = T.chain(key, params, chains, betas, k)
    return chains, tuple(s[0] for s in chains.states)

  return NegativePhase(start, sample)


def fast_persistent(k: int, n_chains: int, fast_optimizer: optax.GradientTransformation
                    ) -> NegativePhase:
  """Fast PCD's negative phase (Tieleman & Hinton 2009): persistent chains that sample the model
  with parameters ``params + fast``, the fast parameters learning from every update's gradient
  with their own (larger, decaying) rule, so the chains are pushed away from where they have
  been. ``fast_optimizer`` is any Optax transformation of the fast parameters, e.g. ``rate``
  0.05 and decay 19/20 a step: ``optax.chain(optax.scale(-0.05), optax.add_decayed_weights(-0.05))``.
  The trainer calls :meth:`NegativePhase.learn` with each gradient.
  """
  plain = persistent(k, n_chains)

  def start(key, params):
    fast = jax.tree.map(jnp.zeros_like, params)
    return FastChains(plain.init(key, params), fast, fast_optimizer.init(fast))

  def sample(key, params, chains, pos):
    model = jax.tree.map(jnp.add, params, chains.fast)
    new, negatives = plain.sample(key, model, chains.chains, pos)
    return chains._replace(chains=new), negatives

  def learn(grads, chains):
    updates, opt_state = fast_optimizer.update(grads, chains.opt_state, chains.fast)
    return chains._replace(fast=optax.apply_updates(chains.fast, updates), opt_state=opt_state)

  return NegativePhase(start, sample, learn)


def sparsity(target: float, cost: float) -> Callable[..., Array]:
  """The sparsity penalty ``cost * sum_j CE(target, q_j)`` on the positive batch (see above)."""
  return lambda params, pos: cost * sparsity_penalty(params, pos.states[0], target)


def _check_mean_mask(mask, params):
  if mask is not None and mask is not True and mask.shape != (params.n_visible,):
    raise ValueError(f"mean_visible has {mask.shape[0]} entries for {params.n_visible} visible "
                     f"units")
