"""Contrastive training of convolutional RBMs: CD-k and PCD through the generic trainer, with Lee et
al.'s sparsity regularisation.

The pieces are :mod:`jdbn.train.phases`'s, for any RBM-shaped block model (``(v, h)``, schedule
``((h,), (v,))``): the score is the free energy of ``v`` (:func:`jdbn.models.base.free_energy`
with ``h`` summed out, per pooling block for pooled models), so the update is ``jax.grad`` of
``mean F(data) - mean F(sg(negatives))`` plus the sparsity penalty, and any Optax transformation
applies it::

    model = conv.init(key, (1, 28, 28), n_filters=24, filter_size=11, pool=2)
    trainer = jdbn.train.conv.cd(optax.sgd(0.01, momentum=0.9), k=1, sparsity_target=0.02)
    state = trainer.init(key, model)
    state, info = trainer.epoch(key, state, data.reshape(len(data), -1), batch_size=20)

Sparsity (Lee, Ekanadham & Ng 2008, eq. 3; used for every layer of Lee et al. 2009, sec. 3.5):

    penalty = cost * sum_k (target - q_k)^2,   q_k = mean over the batch and the positions of
                                                     E[h^k_ij | v]

the mean activation of filter ``k``'s detection units. Lee et al. (2008) "found it sufficient" to
let the penalty move the hidden biases only; ``biases_only=True`` (the default) does that by
stopping its gradient at the filters.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdbn.models import base
from jdbn.models import conv as C
from jdbn.samplers import gibbs as G
from jdbn.train import contrastive
from jdbn.train import phases as PH

Array = jax.Array

__all__ = ["filter_activation", "sparsity", "free_energy_score", "first_sweep", "more_sweeps",
           "phases", "cd", "pcd"]


def filter_activation(model: C.ConvRBM, v: Array) -> Array:
  """``q_k``: the mean of ``E[h^k_ij | v]`` over the batch and the positions, ``[batch, C*H*W]
  -> [K]``."""
  mean = C.maps(model, C.hidden_mean(model, v))
  return jnp.mean(mean.reshape((-1,) + mean.shape[-3:]), axis=(0, 2, 3))


def sparsity(target: float, cost: float, *, biases_only: bool = True) -> Callable[..., Array]:
  """Lee et al.'s sparsity penalty as a :class:`jdbn.train.phases.Phases` ``penalty``:
  ``(params, positive) -> cost * sum_k (target - q_k)^2`` on the positive batch (module
  docstring); with ``biases_only`` its gradient reaches the hidden biases only."""
  if not 0 < target < 1:
    raise ValueError(f"the sparsity target must lie in (0, 1), got {target!r}")
  if not cost >= 0:
    raise ValueError(f"the sparsity cost must be non-negative, got {cost!r}")

  def penalty(params, pos):
    if biases_only:
      params = jax.tree.map(jax.lax.stop_gradient, params).replace(c=params.c)
    q = filter_activation(params, pos.states[0])
    return cost * jnp.sum(jnp.square(target - q))

  return penalty


def free_energy_score(params: base.BlockModel, states) -> Array:
  """The score ``F(v)``, ``h`` summed out: ``[batch]``. For a :class:`~jdbn.models.conv.ConvRBM`
  it is :func:`jdbn.models.conv.free_energy`, which leaves out the coupling ``h . (W * v)`` at
  ``h = 0`` that the generic :func:`jdbn.models.base.free_energy` evaluates: XLA does not fold a
  convolution with zeros, so the generic form costs two weight-gradient convolutions more per
  update. Any other RBM-shaped model gets the generic form."""
  if isinstance(params, C.ConvRBM):
    return C.free_energy(params, states[0])
  return base.free_energy(params, states, (1,))


def first_sweep(key: Array, params: base.BlockModel, batch: Array) -> PH.Positive:
  """CD's positive phase for an RBM-shaped block model: one sweep from the data draws
  ``h_0 ~ p(h | data)`` (the data's states ``(data, h_0)``) and ``v_1 ~ p(v | h_0)`` (the
  chain's start ``(v_1, h_0)``)."""
  lead = batch.shape[:-1]
  start = (batch, jnp.zeros(lead + (params.blocks[1].size,), batch.dtype))
  first, _ = G.step(key, params, start)
  return PH.Positive((batch, first[1]), first)


def more_sweeps(k: int) -> PH.NegativePhase:
  """CD-k's negative phase after :func:`first_sweep`: ``k - 1`` more sweeps."""

  def sample(key, params, chains, pos):
    del chains
    out, _ = G.chain(key, params, pos.start, k - 1)
    return None, out

  return PH.NegativePhase(lambda key, params: None, sample)


def phases(k: int = 1,
           *,
           n_chains: Optional[int] = None,
           sparsity_target: Optional[float] = None,
           sparsity_cost: float = 0.1,
           biases_only: bool = True) -> PH.Phases:
  """The :class:`~jdbn.train.phases.Phases` of CD-k (``n_chains=None``) or PCD with ``n_chains``
  persistent chains (Tieleman 2008), scored by the free energy of ``v``, with the optional
  sparsity penalty (:func:`sparsity`)."""
  contrastive.check_k(k)
  if n_chains is None:
    positive, negative = first_sweep, more_sweeps(int(k))
  else:
    if isinstance(n_chains, bool) or not isinstance(n_chains, (int, np.integer)) or n_chains < 1:
      raise ValueError(f"n_chains must be a positive int, got {n_chains!r}")
    positive, negative = PH.sampled, PH.persistent(int(k), int(n_chains))
  penalty = (None if sparsity_target is None else
             sparsity(sparsity_target, sparsity_cost, biases_only=biases_only))
  return PH.Phases(positive, negative, free_energy_score, penalty)


def cd(optimizer: optax.GradientTransformation, k: int = 1, *,
       sparsity_target: Optional[float] = None, sparsity_cost: float = 0.1,
       biases_only: bool = True) -> contrastive.Trainer:
  """CD-k for convolutional RBMs (and any RBM-shaped block model); see :func:`phases`."""
  ph = phases(k, sparsity_target=sparsity_target, sparsity_cost=sparsity_cost,
              biases_only=biases_only)
  return contrastive.trainer(optimizer, ph, {
      "algorithm": "cd", "k": int(k), "sparsity_target": sparsity_target,
      "sparsity_cost": sparsity_cost, "biases_only": biases_only})


def pcd(optimizer: optax.GradientTransformation, k: int = 1, *, n_chains: int = 100,
        sparsity_target: Optional[float] = None, sparsity_cost: float = 0.1,
        biases_only: bool = True) -> contrastive.Trainer:
  """PCD for convolutional RBMs: ``n_chains`` persistent chains, ``k`` sweeps per update."""
  ph = phases(k, n_chains=n_chains, sparsity_target=sparsity_target,
              sparsity_cost=sparsity_cost, biases_only=biases_only)
  return contrastive.trainer(optimizer, ph, {
      "algorithm": "pcd", "k": int(k), "n_chains": int(n_chains),
      "sparsity_target": sparsity_target, "sparsity_cost": sparsity_cost,
      "biases_only": biases_only})
