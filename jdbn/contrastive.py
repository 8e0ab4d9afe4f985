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

import functools
import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import PartitionSpec as P

from jdbn import gibbs
from jdbn.models import base
from jdbn.models import rbm as R
from jdbn.samplers import gibbs as G

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
    epoch: ``(key, state, data, batch_size, *, metrics=True) -> (state, Info)``, one pass over
      ``data`` in a key-determined order (the remainder that does not fill a batch is skipped),
      all updates in one ``lax.scan`` inside one ``jit``; ``Info`` holds the means over the
      epoch. ``metrics=False`` returns ``(state, None)``: the same updates without the
      diagnostics, which XLA then does not compute (the loss's softplus, the gradient norm's
      extra pass over the weights, the reconstruction): on a 2-core CPU they cost 11-14% of a
      784 x 500 CD-1 epoch and 21-23% of a 64 x 32 one (``benchmarks/RESULTS.md``). If ``data``
      lives on a mesh of devices (a ``jax.sharding.NamedSharding``, replicated or split along its
      first axis), every batch is split over the devices: data parallelism, see
      :mod:`jdbn.parallel`.
  """
  init: Callable[..., TrainState]
  update: Callable[..., tuple[TrainState, Info]]
  epoch: Callable[..., tuple[TrainState, Info]]


def _batch_sharding(data: Array, batch_size: int) -> Optional[jax.sharding.NamedSharding]:
  """How :meth:`Trainer.epoch` lays out ``[n_batches, batch_size, ...]`` when ``data`` lives on a
  mesh of several devices (a ``NamedSharding``): each batch is split over the mesh axes that
  split ``data``'s first axis or, if ``data`` is replicated, over every mesh axis. ``None`` (no
  constraint) for data on one device."""
  if isinstance(data, jax.core.Tracer):  # under an outer jit: known on Explicit meshes only
    sharding = jax.typeof(data).sharding
  else:
    sharding = getattr(data, "sharding", None)
  if not isinstance(sharding, jax.sharding.NamedSharding) or sharding.mesh.size <= 1:
    return None
  spec = tuple(sharding.spec) + (None,) * (data.ndim - len(sharding.spec))
  if spec[0] is not None:
    axes = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
  elif all(a is None for a in spec):
    axes = tuple(sharding.mesh.axis_names)
  else:
    return None
  n = math.prod(sharding.mesh.shape[a] for a in axes)
  if batch_size % n:
    raise ValueError(f"the data's mesh splits each batch over {n} devices, so batch_size must be "
                     f"a multiple of {n}, got {batch_size}")
  return jax.sharding.NamedSharding(sharding.mesh,
                                    P(None, axes[0] if len(axes) == 1 else axes, *spec[1:]))


def _constrain(x: Array, sharding: jax.sharding.NamedSharding) -> Array:
  """Lays ``x`` out as ``sharding`` inside ``jit``: ``reshard`` on an all-``Explicit`` mesh
  (where ``with_sharding_constraint`` only asserts), ``with_sharding_constraint`` otherwise."""
  if all(t == jax.sharding.AxisType.Explicit for t in sharding.mesh.axis_types):
    return jax.sharding.reshard(x, sharding)
  return jax.lax.with_sharding_constraint(x, sharding)


def _sparsity_penalty(params: R.RBM, data: Array, target: float) -> Array:
  q = jnp.clip(jnp.mean(R.hidden_mean(params, data), axis=0), 1e-6, 1 - 1e-6)
  return -jnp.sum(target * jnp.log(q) + (1 - target) * jnp.log1p(-q))


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
      return loss + sparsity_cost * _sparsity_penalty(p, data, sparsity_target), loss
    return loss, loss

  (_, loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  return loss, grads


def _mean_mask(mean_visible):
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
  """
  init: Callable[..., Any]
  sample: Callable[..., tuple[Any, Any]]


class Phases(NamedTuple):
  """The pieces of a contrastive update (see the module docstring).

  Attributes:
    positive: ``(key, params, batch) -> Positive``.
    negative: a :class:`NegativePhase`.
    score: ``(params, states) -> [batch]``, the energy whose data-minus-samples mean is the
      surrogate loss (its gradient is the likelihood gradient's estimate).
    penalty: optional ``(params, positive) -> scalar`` added to the loss (e.g. sparsity).
  """
  positive: Callable[..., Positive]
  negative: NegativePhase
  score: Callable[..., Array]
  penalty: Optional[Callable[..., Array]] = None


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


def trainer(optimizer: optax.GradientTransformation, phases: Phases) -> Trainer:
  """A contrastive :class:`Trainer` for any block model from its :class:`Phases`.

  ``update`` takes a batch of block 0 (``[batch, size_0]``), runs :func:`gradient` and applies
  it with ``optimizer``; its :class:`Info` has the surrogate, the mean squared error of the
  data's mean reconstruction ``E[x_0 | positive states]`` and the gradient's norm. ``epoch``
  runs every update of a pass over the data in one ``lax.scan`` inside one ``jit``.
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
    batch = jnp.asarray(batch, _data_dtype(params))
    loss, grads, chains, pos, _ = gradient(key, phases, params, state.chains, batch)
    recon = base.conditional_mean(params, pos.states, 0)
    updates, opt_state = optimizer.update(grads, state.opt_state, params)
    params = optax.apply_updates(params, updates)
    info = Info(loss, jnp.mean(jnp.square(batch - recon)), optax.tree.norm(grads))
    return TrainState(params, opt_state, chains, state.step + 1), info

  @functools.partial(jax.jit, static_argnames=("batch_size", "batch_sharding", "metrics"))
  def _epoch(key, state, data, batch_size, batch_sharding, metrics=True):
    key_perm, key_steps = jax.random.split(key)
    n_batches = data.shape[0] // batch_size
    order = jax.random.permutation(key_perm, data.shape[0])[:n_batches * batch_size]
    if batch_sharding is not None:  # a global shuffle needs every row (no-op if replicated)
      data = _constrain(data, jax.sharding.NamedSharding(batch_sharding.mesh, P()))
    batches = data[order].reshape((n_batches, batch_size) + data.shape[1:])
    if batch_sharding is not None:  # each device keeps its part of every batch
      batches = _constrain(batches, batch_sharding)

    def body(s, xs):
      k, b = xs
      s, info = update(k, s, b)
      return s, (info if metrics else None)

    state, infos = jax.lax.scan(body, state,
                                (jax.random.split(key_steps, n_batches), batches))
    return state, (jax.tree.map(jnp.mean, infos) if metrics else None)

  def epoch(key: Array, state: TrainState, data: Array, batch_size: int, *,
            metrics: bool = True) -> tuple[TrainState, Optional[Info]]:
    data = jnp.asarray(data)
    n_data = state.params.blocks[0].size
    if data.ndim != 2 or data.shape[1] != n_data:
      raise ValueError(f"data must have shape [n, {n_data}], got {tuple(data.shape)}")
    if (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
        or not 0 < batch_size <= data.shape[0]):
      raise ValueError(f"batch_size must be an int in [1, {data.shape[0]}], got {batch_size!r}")
    if not isinstance(metrics, bool):
      raise TypeError(f"metrics must be True or False, got {metrics!r}")
    batch_size = int(batch_size)
    sharding = _batch_sharding(data, batch_size)
    if sharding is not None:
      from jdbn import parallel  # pylint: disable=import-outside-toplevel  (it imports this)
      parallel.check_key(key, sharding.mesh)
    return _epoch(key, state, data.astype(_data_dtype(state.params)), batch_size, sharding,
                  metrics)

  return Trainer(init, update, epoch)


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
  mask = _mean_mask(mean_visible)

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
  mask = _mean_mask(mean_visible)

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


def sparsity(target: float, cost: float) -> Callable[..., Array]:
  """The sparsity penalty ``cost * sum_j CE(target, q_j)`` on the positive batch (see above)."""
  return lambda params, pos: cost * _sparsity_penalty(params, pos.states[0], target)


def _check_mean_mask(mask, params):
  if mask is not None and mask is not True and mask.shape != (params.n_visible,):
    raise ValueError(f"mean_visible has {mask.shape[0]} entries for {params.n_visible} visible "
                     f"units")


def _rbm_trainer(optimizer, k, positive, negative, sparsity_target, sparsity_cost):
  del k  # checked by the caller, used by the phases
  if sparsity_target is not None and not 0 < sparsity_target < 1:
    raise ValueError(f"sparsity_target must lie in (0, 1), got {sparsity_target}")
  penalty = None if sparsity_target is None else sparsity(sparsity_target, sparsity_cost)
  return trainer(optimizer, Phases(positive, negative, free_energy_score, penalty))


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
  _check_k(k)
  return _rbm_trainer(optimizer, k, sweep_from_data(mean_visible), from_data(k, mean_visible),
                      sparsity_target, sparsity_cost)


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
  _check_k(k)
  return _rbm_trainer(optimizer, k, sampled_hidden, persistent(k, int(n_chains)),
                      sparsity_target, sparsity_cost)


def _check_k(k):
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
    raise ValueError(f"k (Gibbs sweeps per update) must be a positive int, got {k!r}")
