"""Contrastive divergence (CD-k) and persistent CD (PCD), with Optax applying every update.

The log-likelihood gradient of an RBM is ``-<dF/dtheta>_data + <dF/dtheta>_model``. CD-k
(Hinton 2002) estimates the model term with samples ``k`` Gibbs sweeps away from the data; PCD
(Tieleman 2008) with persistent chains that carry over from one update to the next. Both are the
gradient of the surrogate loss

    L(theta) = mean_i F(v_i) - mean_j F(stop_gradient(v~_j))

so the training rule of any unit family follows from its free energy, and any
``optax.GradientTransformation`` applies it: momentum, weight decay (``optax.add_decayed_weights``),
schedules and clipping are ``optax.chain(...)``::

    trainer = contrastive.cd(optax.sgd(0.05, momentum=0.9), k=1)
    state = trainer.init(key, params)
    state, info = jax.jit(trainer.update)(key, state, batch)
    state, info = trainer.epoch(key, state, data, batch_size=100)   # one jit, one lax.scan

The trainer is generic over its phases (:class:`Phases`): a *positive phase* fills the hidden
blocks of a model for the data (a sampled or mean-field ``h``), a *negative phase* draws the
model's samples (CD chains from the data, persistent chains, and later tempering), and a
*score* turns states into the energy the surrogate differences (the free energy ``F(v)`` of an
RBM, the energy ``E(v, mu)`` of a DBM's mean-field state). :func:`cd` and :func:`pcd` are short
constructors over :func:`trainer`; any :class:`jdbn.models.base.BlockModel` plugs in the same
way, with the data in its block 0.

An optional sparsity target (Lee, Ekanadham & Ng 2008; Hinton 2010, section 11) adds
``cost * sum_j CE(target, q_j)`` with ``q_j`` the batch mean of ``E[h_j | v]``, whose gradient
with respect to the hidden inputs is ``cost * (q_j - target)``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jdbn import gibbs
from jdbn.train import loop
from jdbn.train import phases as PH
from jdbn.train.phases import (NegativePhase, Phases, Positive, clamped,  # noqa: F401  (public here)
                         energy_score, free_energy_score, from_data, persistent,
                         sampled_hidden, sparsity, sweep_from_data)
from jdbn import sharding
from jdbn import units as U
from jdbn.models import base
from jdbn.models import rbm as R

Array = jax.Array


@struct.dataclass
class TrainState:
  """Everything that training carries from one update to the next.

  Attributes:
    params: the RBM's params.
    opt_state: the optimizer's state.
    chains: the persistent chains (PCD), a :class:`jdbn.gibbs.ChainState` ``[n_chains, ...]``,
      or ``None`` for CD.
    step: number of updates applied so far.
  """
  params: R.RBM
  opt_state: Any
  chains: Optional[gibbs.ChainState]
  step: Array


class Info(NamedTuple):
  """Diagnostics of one update (or, from :meth:`Trainer.epoch`, their means over the epoch).

  Attributes:
    loss: the CD surrogate, ``mean F(data) - mean F(negatives)``; it is not a likelihood, but a
      large negative value says the chains have wandered far from the data.
    recon_error: mean squared error between the batch and its one-step mean reconstruction
      ``E[v | h]`` with ``h ~ p(h | data)``.
    grad_norm: global norm of the gradient before the optimizer.
  """
  loss: Array
  recon_error: Array
  grad_norm: Array


class Trainer(NamedTuple):
  """A contrastive training algorithm as pure functions (compare ``optax.GradientTransformation``).

  Attributes:
    init: ``(key, params) -> TrainState``.
    update: ``(key, state, batch) -> (state, Info)``, one update on ``batch [batch, n_visible]``;
      not jitted, so that it composes; wrap it in ``jax.jit`` to run it alone.
    epoch: ``(key, state, data, batch_size, *, metrics=True, check=True) -> (state, Info)``,
      one pass over ``data`` in a key-determined order (the remainder that does not fill a batch
      is skipped), all updates in one ``lax.scan`` inside one ``jit``; ``Info`` holds the means
      over the epoch. ``metrics=False`` returns ``(state, None)``: the same updates without the
      diagnostics, which XLA then does not compute (the loss's softplus, the gradient norm's
      extra pass over the weights, the reconstruction; measured costs in
      ``benchmarks/HISTORY.md``). ``check=True`` first checks concrete data with
      :func:`check_data` (empty, NaN, inf, outside the units' range: one pass on the device);
      ``check=False`` skips it (data checked once already, timing loops). If ``data`` lives on a
      mesh of devices (a ``jax.sharding.NamedSharding``, replicated or split along its first
      axis), every batch is split over the devices: data parallelism, see :mod:`jdbn.parallel`.
    config: what the trainer was built with (``{"algorithm": "cd", "k": 1, "optimizer": ...}``),
      so that :func:`jdbn.train.fit` can refuse to resume a run with other settings; ``None``
      when unknown.
  """
  init: Callable[..., TrainState]
  update: Callable[..., tuple[TrainState, Info]]
  epoch: Callable[..., tuple[TrainState, Info]]
  config: Optional[dict] = None


def loss_and_grad(params: R.RBM,
                  data: Array,
                  negatives: Array,
                  *,
                  sparsity_target: Optional[float] = None,
                  sparsity_cost: float = 0.0) -> tuple[Array, R.RBM]:
  """The contrastive surrogate ``mean F(data) - mean F(negatives)`` and its gradient.

  Args:
    params: RBM params.
    data: positive-phase visible states, ``[batch, n_visible]``.
    negatives: negative-phase visible states, ``[n_neg, n_visible]`` (gradients are stopped).
    sparsity_target: optional target mean activation of the hidden units.
    sparsity_cost: weight of the sparsity penalty.

  Returns:
    ``(loss, grads)``, ``grads`` a params pytree.
  """
  negatives = jax.lax.stop_gradient(negatives)

  def loss_fn(p):
    loss = jnp.mean(R.free_energy(p, data)) - jnp.mean(R.free_energy(p, negatives))
    if sparsity_target is not None:
      return loss + sparsity_cost * PH.sparsity_penalty(p, data, sparsity_target), loss
    return loss, loss

  (_, loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  return loss, grads


class Estimate(NamedTuple):
  """The result of :func:`gradient`.

  Attributes:
    loss: the surrogate without the penalty.
    grads: its gradient, a params pytree.
    chains: the negative phase's new persistent state (``None`` for CD).
    positive: the positive phase's :class:`Positive`.
    negatives: the negative states, one array per block.
  """
  loss: Array
  grads: Any
  chains: Any
  positive: Positive
  negatives: Any


def gradient(key: Array, phases: Phases, params: Any, chains: Any, batch: Array) -> Estimate:
  """One contrastive gradient estimate: both phases, then ``jax.grad`` of the surrogate.

  ``key`` splits into ``(key_pos, key_neg)`` for the two phases. The surrogate is
  ``mean score(positive) - mean score(sg(negatives))`` (+ ``penalty``), the states held fixed.

  Returns:
    An :class:`Estimate`.
  """
  key_pos, key_neg = jax.random.split(key)
  pos = phases.positive(key_pos, params, batch)
  chains, negatives = phases.negative.sample(key_neg, params, chains, pos)
  pos_states = jax.lax.stop_gradient(tuple(pos.states))
  negatives = jax.lax.stop_gradient(tuple(negatives))

  def loss_fn(p):
    loss = jnp.mean(phases.score(p, pos_states)) - jnp.mean(phases.score(p, negatives))
    if phases.penalty is not None:
      return loss + phases.penalty(p, pos), loss
    return loss, loss

  (_, loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  return Estimate(loss, grads, chains, pos, negatives)


def _data_dtype(params):
  return jnp.result_type(params.bias(0))


def trainer(optimizer: optax.GradientTransformation, phases: Phases,
            config: Optional[dict] = None) -> Trainer:
  """A contrastive :class:`Trainer` for any block model from its :class:`Phases`.

  ``update`` takes a batch of block 0 (``[batch, size_0]``), or a pair ``(x, labels)`` whose
  second array only the positive phase reads (:func:`split_batch`; ``epoch`` then takes
  ``(data, labels)`` sharing their first axis), runs :func:`gradient` and applies
  it with ``optimizer``; its :class:`Info` has the surrogate, the mean squared error of the
  data's mean reconstruction ``E[x_0 | positive states]`` and the gradient's norm. ``epoch``
  runs every update of a pass over the data in one ``lax.scan`` inside one ``jit``. ``config``
  (JSON-able settings) is kept with ``optimizer`` as the trainer's :attr:`Trainer.config`.
  """
  if not isinstance(optimizer, optax.GradientTransformation):
    raise TypeError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer)}")
  if not isinstance(phases, Phases):
    raise TypeError(f"phases must be a contrastive.Phases, got {type(phases)}")

  def init(key: Array, params) -> TrainState:
    return TrainState(params, optimizer.init(params), phases.negative.init(key, params),
                      jnp.zeros((), jnp.int32))

  def update(key: Array, state: TrainState, batch: Array) -> tuple[TrainState, Info]:
    params = state.params
    x, side = split_batch(batch)
    x = jnp.asarray(x, _data_dtype(params))
    batch = x if side is None else (x, side)
    loss, grads, chains, pos, _ = gradient(key, phases, params, state.chains, batch)
    recon = base.conditional_mean(params, pos.states, 0)
    updates, opt_state = optimizer.update(grads, state.opt_state, params)
    params = optax.apply_updates(params, updates)
    if phases.negative.learn is not None:
      chains = phases.negative.learn(grads, chains)
    if phases.after is not None:
      params = phases.after(params, pos)
    info = Info(loss, jnp.mean(jnp.square(x - recon)), optax.tree.norm(grads))
    return TrainState(params, opt_state, chains, state.step + 1), info

  def epoch(key: Array, state: TrainState, data: Array, batch_size: int, *,
            metrics: bool = True, check: bool = True) -> tuple[TrainState, Optional[Info]]:
    data, side = _epoch_data(state.params, data, check)
    if (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
        or not 0 < batch_size <= data.shape[0]):
      raise ValueError(f"batch_size must be an int in [1, {data.shape[0]}], got {batch_size!r}")
    if not isinstance(metrics, bool):
      raise TypeError(f"metrics must be True or False, got {metrics!r}")
    batch_size = int(batch_size)
    layout = sharding.epoch_batch_sharding(data, batch_size)
    if layout is not None:
      if side is not None:
        raise ValueError("(data, labels) pairs on a mesh of devices are not supported")
      sharding.check_key(key, layout.mesh)
    data = data.astype(_data_dtype(state.params))
    return loop.run_epoch(update, key, state, data if side is None else (data, side), batch_size,
                          layout=layout, metrics=metrics)

  return Trainer(init, update, epoch, {**(config or {}), "optimizer": optimizer})


def _epoch_data(params, data, check: bool) -> tuple[Array, Any]:
  """``(x, side)`` of an epoch's ``data`` (``x`` or ``(x, side)``), their shapes checked, and
  concrete ``x`` with :func:`check_data` when ``check``."""
  data, side = split_batch(data)
  data = jnp.asarray(data)
  n_data = params.blocks[0].size
  if data.ndim != 2 or data.shape[1] != n_data:
    raise ValueError(f"data must have shape [n, {n_data}], got {tuple(data.shape)}")
  if side is not None and jnp.shape(side)[:1] != data.shape[:1]:
    raise ValueError(f"the second array of (data, labels) has shape {jnp.shape(side)} for "
                     f"{data.shape[0]} examples")
  if check and not isinstance(data, jax.core.Tracer):
    check_data(params, data)
  return data, side


def split_batch(batch) -> tuple[Any, Any]:
  """``(x, side)`` of a batch that is ``x`` (``side`` is ``None``) or a tuple ``(x, side)``:
  the data block and a second array that only the positive phase reads (a DBM's labels)."""
  if isinstance(batch, tuple):
    if len(batch) != 2:
      raise ValueError(f"a batch is an array or a pair (data, labels), got {len(batch)} arrays")
    return batch[0], batch[1]
  return batch, None


def check_data(params, data, name: str = "data") -> None:
  """Raises ``ValueError`` for empty data, NaN or inf, or values outside the data block's
  family (e.g. not in [0, 1] for Bernoulli units), naming ``name``. Needs concrete values."""
  if data.shape[0] == 0:
    raise ValueError(f"{name} is empty")
  units = params.blocks[0].units
  if isinstance(units, U.Bernoulli):  # the common case, checked on the device in one pass
    ok, low, high = _finite_range(jnp.asarray(data, _data_dtype(params)))
    if bool(ok) and 0 <= float(low) <= float(high) <= 1:
      return
  units.validate(np.asarray(data), name)  # the family's own check and precise message


@jax.jit
def _finite_range(x):
  return jnp.all(jnp.isfinite(x)), jnp.min(x), jnp.max(x)


def rbm_trainer(optimizer, k, positive, negative, sparsity_target, sparsity_cost, **config):
  """A :func:`trainer` for RBMs scored by the free energy, with the optional sparsity penalty
  and ``config`` (``k``, the sparsity settings and the caller's keywords) recorded."""
  if sparsity_target is not None and not 0 < sparsity_target < 1:
    raise ValueError(f"sparsity_target must lie in (0, 1), got {sparsity_target}")
  penalty = None if sparsity_target is None else sparsity(sparsity_target, sparsity_cost)
  config = {"k": int(k), "sparsity_target": sparsity_target, "sparsity_cost": sparsity_cost,
            **config}
  return trainer(optimizer, Phases(positive, negative, free_energy_score, penalty), config)


def cd(optimizer: optax.GradientTransformation,
       k: int = 1,
       *,
       sparsity_target: Optional[float] = None,
       sparsity_cost: float = 0.0,
       mean_visible=None) -> Trainer:
  """CD-k (Hinton 2002): negatives are ``k`` Gibbs sweeps away from the batch.

  Args:
    optimizer: any Optax transformation, e.g. ``optax.sgd(0.05, momentum=0.9)``.
    k: Gibbs sweeps per update.
    sparsity_target, sparsity_cost: optional sparsity penalty (see module docstring).
    mean_visible: ``True`` or a boolean mask ``[n_visible]``: those visible units of every
      reconstruction take their mean ``E[v | h]`` instead of a sample (see
      :func:`jdbn.gibbs.sweep`). Hinton's CD code (the 2006 DBN and autoencoder papers) uses
      mean reconstructions: less sampling noise, and "slightly worse density models" (Hinton
      2010, section 3.2). The default samples them.
  """
  check_k(k)
  mask = PH.mean_mask(mean_visible)
  return rbm_trainer(optimizer, k, sweep_from_data(mean_visible), from_data(k, mean_visible),
                      sparsity_target, sparsity_cost, algorithm="cd",
                      mean_visible=mask if mask is None or mask is True else mask.tolist())


def pcd(optimizer: optax.GradientTransformation,
        k: int = 1,
        *,
        n_chains: int = 100,
        sparsity_target: Optional[float] = None,
        sparsity_cost: float = 0.0) -> Trainer:
  """Persistent CD (Tieleman 2008): ``n_chains`` chains advance ``k`` sweeps per update.

  Args:
    optimizer: any Optax transformation.
    k: Gibbs sweeps per update.
    n_chains: number of persistent chains ("fantasy particles"), started at random.
    sparsity_target, sparsity_cost: optional sparsity penalty (see module docstring).
  """
  if isinstance(n_chains, bool) or not isinstance(n_chains, (int, np.integer)) or n_chains < 1:
    raise ValueError(f"n_chains must be a positive int, got {n_chains!r}")
  check_k(k)
  return rbm_trainer(optimizer, k, sampled_hidden, persistent(k, int(n_chains)),
                      sparsity_target, sparsity_cost, algorithm="pcd", n_chains=int(n_chains))


def check_k(k):
  """``ValueError`` unless ``k`` (Gibbs sweeps per update) is a positive int."""
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
    raise ValueError(f"k (Gibbs sweeps per update) must be a positive int, got {k!r}")
