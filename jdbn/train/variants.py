"""Better negative phases and a better parameterisation for RBM training: parallel tempering, fast
PCD and centering, each a constructor of the generic contrastive trainer.

PCD with one Gibbs sweep per update mixes poorly once the model sharpens: its chains stay in one
mode while the data has many. The literature's answers, all returning a
:class:`jdbn.train.contrastive.Trainer` that ``jdbn.train.fit`` and ``jdbn train rbm`` run like
``cd``/``pcd``:

* :func:`pt`: persistent chains with parallel tempering (Desjardins, Courville, Bengio, Vincent &
  Delalleau 2010; :mod:`jdbn.samplers.tempering`); the hot replicas cross the barriers.
* :func:`fpcd`: fast PCD (Tieleman & Hinton 2009): fast weights that only the chains see push
  them out of the modes they have just visited.
* :func:`centered`: CD or PCD on a :class:`~jdbn.models.centered.CenteredRBM` (Montavon & Müller
  2012; Melchior, Fischer & Wiskott 2016), whose offsets follow the data's means.
"""

from __future__ import annotations

from typing import Optional

import jax.numpy as jnp
import numpy as np
import optax

from jdbn.models import centered as CM
from jdbn.samplers import tempering as T
from jdbn.train import phases as PH
from jdbn.train.contrastive import Trainer, check_k, rbm_trainer, trainer
from jdbn.train.phases import sampled_hidden


def _check_chains(n_chains):
  if isinstance(n_chains, bool) or not isinstance(n_chains, (int, np.integer)) or n_chains < 1:
    raise ValueError(f"n_chains must be a positive int, got {n_chains!r}")


def pt(optimizer: optax.GradientTransformation,
       k: int = 1,
       *,
       n_chains: int = 100,
       betas=None,
       sparsity_target: Optional[float] = None,
       sparsity_cost: float = 0.0) -> Trainer:
  """PCD with parallel tempering (Desjardins, Courville, Bengio, Vincent & Delalleau 2010).

  ``n_chains`` persistent chains at each inverse temperature of ``betas`` advance ``k`` tempering
  steps (a Gibbs sweep of every replica, then neighbour swaps) per update; the ``beta = 1``
  replica gives the negatives. The swap rates are ``state.chains.swap_rates``.

  Args:
    optimizer: any Optax transformation.
    k: tempering steps per update.
    n_chains: chains per temperature.
    betas: ``[M]`` inverse temperatures from 1 down; default
      ``jdbn.samplers.tempering.ladder(10, 0.1)`` (10 geometric replicas).
    sparsity_target, sparsity_cost: optional sparsity penalty (see module docstring).
  """
  _check_chains(n_chains)
  check_k(k)
  betas = T.ladder(10, 0.1) if betas is None else betas
  T.check_betas(betas)
  return rbm_trainer(optimizer, k, sampled_hidden, PH.tempering(betas, int(k), int(n_chains)),
                      sparsity_target, sparsity_cost, algorithm="pt", n_chains=int(n_chains),
                      betas=[round(float(b), 7) for b in np.asarray(betas, np.float64)])


def fpcd(optimizer: optax.GradientTransformation,
         k: int = 1,
         *,
         n_chains: int = 100,
         fast_rate: float = 0.05,
         fast_decay: float = 19 / 20,
         fast_optimizer: Optional[optax.GradientTransformation] = None,
         sparsity_target: Optional[float] = None,
         sparsity_cost: float = 0.0) -> Trainer:
  """Fast persistent CD (Tieleman & Hinton 2009): PCD whose chains sample ``params + fast``.

  The fast parameters start at zero and after every update become ``fast_decay * fast +
  fast_rate * (log-likelihood gradient)`` (the regular parameters follow ``optimizer``), so they
  raise the energy where the chains have just been and the chains move on. With ``fast_rate=0``
  this is :func:`pcd` update for update.

  Args:
    optimizer: the regular parameters' Optax transformation.
    k: Gibbs sweeps per update.
    n_chains: persistent chains.
    fast_rate, fast_decay: the fast rule (the paper: the regular initial rate, 19/20); ignored
      when ``fast_optimizer`` (any Optax transformation of the fast parameters) is given.
    sparsity_target, sparsity_cost: optional sparsity penalty (see module docstring).
  """
  _check_chains(n_chains)
  check_k(k)
  if fast_optimizer is None:
    if not fast_rate >= 0 or not 0 <= fast_decay <= 1:
      raise ValueError(f"fast_rate must be >= 0 and fast_decay in [0, 1], got {fast_rate!r}, "
                       f"{fast_decay!r}")
    fast_optimizer = optax.chain(optax.scale(-float(fast_rate)),
                                 optax.add_decayed_weights(-(1.0 - float(fast_decay))))
  negative = PH.fast_persistent(int(k), int(n_chains), fast_optimizer)
  return rbm_trainer(optimizer, k, sampled_hidden, negative, sparsity_target, sparsity_cost,
                      algorithm="fpcd", n_chains=int(n_chains), fast_rate=float(fast_rate),
                      fast_decay=float(fast_decay))


def centered(optimizer: optax.GradientTransformation,
             k: int = 1,
             *,
             n_chains: Optional[int] = None,
             offset_rate: float = 0.01) -> Trainer:
  """CD-k (or PCD with ``n_chains``) on a :class:`~jdbn.models.centered.CenteredRBM`.

  The gradient is ``jax.grad`` of the centered free energy with the offsets held fixed, so the
  weights move by ``<(s_v - mu)(E[s_h | v] - lambda)^T>_data - <...>_model``; after every update
  the offsets take a step of ``offset_rate`` towards the batch's mean ``s_v`` and mean
  ``E[s_h | v]`` (a running mean, Melchior et al.'s sliding factor ``nu``), and the biases move
  with them so the distribution is unchanged (:func:`jdbn.models.centered.shift`). Start from
  ``jdbn.models.centered.center(rbm, data)``.

  Args:
    optimizer: any Optax transformation (the offsets get zero gradients, so momentum and decay
      leave them alone; mask them out of anything that moves parameters without a gradient).
    k: Gibbs sweeps per update.
    n_chains: persistent chains (PCD) or ``None`` for CD-k from the data.
    offset_rate: the offsets' running-mean rate, in (0, 1].
  """
  check_k(k)
  if not 0 < offset_rate <= 1:
    raise ValueError(f"offset_rate must lie in (0, 1], got {offset_rate!r}")
  if n_chains is None:
    negative = PH.chains_from_positive(int(k))
  else:
    _check_chains(n_chains)
    negative = PH.persistent(int(k), int(n_chains))

  def after(model, pos):
    if not isinstance(model, CM.CenteredRBM):
      raise TypeError(f"the centered trainer needs a CenteredRBM (jdbn.models.centered.center), "
                      f"got {type(model).__name__}")
    v = pos.states[0]
    rbm = model.rbm
    mean_v = jnp.mean(rbm.visible.scaled(v, rbm.log_sigma_v), axis=0)
    q = CM.hidden_mean(model, v)
    mean_h = jnp.mean(rbm.hidden.scaled(q, rbm.log_sigma_h), axis=0)
    return CM.shift(model, (1 - offset_rate) * model.mu + offset_rate * mean_v,
                    (1 - offset_rate) * model.lam + offset_rate * mean_h)

  phases = PH.Phases(PH.sampled, negative, PH.summed_score((1,)), after=after)
  config = {"algorithm": "centered-" + ("cd" if n_chains is None else "pcd"), "k": int(k),
            "n_chains": n_chains, "offset_rate": float(offset_rate)}
  return trainer(optimizer, phases, config)
