"""Training conditional RBMs with the generic contrastive trainer, the context clamped.

A CRBM's data block is ``v = [x | y]`` (:mod:`jdbn.models.crbm`) and its context units never
move under Gibbs sampling, so the generic pieces apply as they are: the positive phase
:func:`jdbn.train.phases.sampled` draws ``h ~ p(h | y, x)``, CD-k's chains
(:func:`~jdbn.train.phases.chains_from_positive`) continue from there with every example's own
context, and the score :func:`~jdbn.train.phases.summed_score` is ``F(y | x)``, so the update is
the gradient of ``mean F(y | x) - mean F(y~ | x)``: the conditional likelihood gradient of Taylor,
Hinton & Roweis (2007), section 2.2, with ``y~`` drawn ``k`` sweeps from the data.

CD-k's chains start at the data's ``y``, so the model learns nothing about where a chain
started elsewhere goes: completing an image half from a blank start with a CD-1 model stays
blank. :func:`from_fixed_start` starts every negative chain at a fixed output (zeros) with the
batch's context instead, the start that prediction uses, so training shapes exactly the ``k``
sweeps prediction runs (short-run MCMC, as in Nijkamp et al. 2019; Mnih et al. 2011 make the
same point for structured outputs).

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

__all__ = ["cd", "pcd", "conditional_persistent", "from_fixed_start"]

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


def from_fixed_start(k: int) -> PH.NegativePhase:
  """A negative phase: every chain starts at ``[x | 0]`` with its row's context ``x`` and ``h = 0``
  and runs ``k`` sweeps."""

  def sample(key, params, chains, pos):
    del chains
    v = jnp.where(C.context_mask(params), pos.states[0], 0.0)
    out, _ = G.chain(key, params, (v, jnp.zeros_like(pos.states[1])), k)
    return None, out

  return PH.NegativePhase(lambda key, params: None, sample)


def _trainer(optimizer, negative, **config):
  phases = PH.Phases(PH.sampled, negative, PH.summed_score((1,)))
  return contrastive.trainer(optimizer, phases, {"model": "crbm", **config})


def cd(optimizer: optax.GradientTransformation, k: int = 1, *,
       start: str = "data") -> contrastive.Trainer:
  """CD-k for a CRBM: ``trainer.epoch(key, state, v, batch_size)`` on joined data ``v = [x | y]``
  (:func:`jdbn.models.crbm.join`, :func:`jdbn.samplers.sequence.windows`).

  Args:
    optimizer: any Optax transformation.
    k: Gibbs sweeps per update, the context fixed.
    start: ``"data"`` (CD-k: the chains start at the data) or ``"zeros"``
      (:func:`from_fixed_start`).
  """
  contrastive.check_k(k)
  if start not in ("data", "zeros"):
    raise ValueError(f"start must be 'data' or 'zeros', got {start!r}")
  negative = (PH.chains_from_positive(int(k)) if start == "data" else
              from_fixed_start(int(k)))
  return _trainer(optimizer, negative, algorithm="cd", k=int(k), start=start)


def pcd(optimizer: optax.GradientTransformation, k: int = 1, *,
        batch_size: int) -> contrastive.Trainer:
  """Conditional PCD (:func:`conditional_persistent`) with one chain per batch row."""
  contrastive.check_k(k)
  if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or \
      batch_size < 1:
    raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
  return _trainer(optimizer, conditional_persistent(int(k), int(batch_size)), algorithm="pcd",
                  k=int(k), n_chains=int(batch_size))
