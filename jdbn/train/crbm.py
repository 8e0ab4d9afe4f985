"""Training conditional RBMs with the generic contrastive trainer, the context clamped.

A CRBM's data block is ``v = [x | y]`` (:mod:`jdbn.models.crbm`) and its context units never
move under Gibbs sampling, so the generic pieces apply as they are: the positive phase
:func:`jdbn.train.phases.sampled` draws ``h ~ p(h | y, x)``, CD-k's chains
(:func:`~jdbn.train.phases.chains_from_positive`) continue from there with every example's own
context, and the score :func:`~jdbn.train.phases.summed_score` is ``F(y | x)``, so the update is
the gradient of ``mean F(y | x) - mean F(y~ | x)``: the conditional likelihood gradient of Taylor,
Hinton & Roweis (2007), section 2.2, with ``y~`` drawn ``k`` sweeps from the data.

Persistent chains need the same care as in Mnih, Larochelle & Hinton (2011): a fantasy
particle samples ``p(y | x)`` for one ``x``, so :func:`conditional_persistent` ties chain ``i`` to
row ``i`` of each batch, giving it that row's context before its ``k`` sweeps (Mnih et al. found
such chains mix poorly across changing contexts; CD-k is the default).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdbn.models import crbm as C
from jdbn.samplers import gibbs as G
from jdbn.train import contrastive
from jdbn.train import phases as PH

__all__ = ["cd", "pcd", "conditional_persistent"]

Array = jax.Array


def conditional_persistent(k: int, n_chains: int) -> PH.NegativePhase:
  """PCD's negative phase for a CRBM: ``n_chains`` persistent ``(y, h)`` chains, chain ``i``
  given row ``i``'s context of each batch (batches must have ``n_chains`` rows), then ``k``
  sweeps. The chains start at zero outputs."""

  def start(key, params):
    del key
    v = jnp.zeros((n_chains, params.blocks[0].size), params.W.dtype)
    return (v, jnp.zeros((n_chains, params.n_hidden), params.W.dtype))

  def sample(key, params, chains, pos):
    batch = pos.states[0]
    if batch.shape[0] != n_chains:
      raise ValueError(f"conditional PCD ties one chain to each row of a batch: batches must have "
                       f"{n_chains} rows, got {batch.shape[0]}")
    mask = C.context_mask(params)
    v = jnp.where(mask, batch, chains[0])
    chains, _ = G.chain(key, params, (v, chains[1]), k)
    return chains, chains

  return PH.NegativePhase(start, sample)


def _trainer(optimizer, negative, **config):
  phases = PH.Phases(PH.sampled, negative, PH.summed_score((1,)))
  return contrastive.trainer(optimizer, phases, {"model": "crbm", **config})


def cd(optimizer: optax.GradientTransformation, k: int = 1) -> contrastive.Trainer:
  """CD-k for a CRBM: ``trainer.epoch(key, state, v, batch_size)`` on joined data ``v = [x | y]``
  (:func:`jdbn.models.crbm.join`, :func:`jdbn.samplers.sequence.windows`).

  Args:
    optimizer: any Optax transformation.
    k: Gibbs sweeps per update, the context fixed.
  """
  contrastive.check_k(k)
  return _trainer(optimizer, PH.chains_from_positive(int(k)), algorithm="cd", k=int(k))


def pcd(optimizer: optax.GradientTransformation, k: int = 1, *,
        batch_size: int) -> contrastive.Trainer:
  """Conditional PCD (:func:`conditional_persistent`) with one chain per batch row."""
  contrastive.check_k(k)
  if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or \
      batch_size < 1:
    raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
  return _trainer(optimizer, conditional_persistent(int(k), int(batch_size)), algorithm="pcd",
                  k=int(k), n_chains=int(batch_size))
