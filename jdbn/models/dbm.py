"""Deep Boltzmann Machines: an undirected chain of blocks ``v - h1 - h2 - ...``.

Every layer is coupled to the one below and the one above (Salakhutdinov & Hinton 2009):

    E(v, h1, ..., hL) = sum_l E_l(x_l; a_l, sigma_l) - sum_l s_l(x_l) @ W_l @ s_{l+1}(x_{l+1})

with ``x_0 = v`` and any :mod:`jdbn.units` family per layer. Given its two neighbours a layer's
units are independent, so the odd layers form one block group and the even layers the other:
the schedule is ``((h1, h3, ...), (v, h2, ...))``, and one Gibbs sweep is two half-sweeps of
matrix products, as in an RBM. With the odd layers summed out, the even layers have the
tractable marginal :func:`free_energy` (the quantity AIS anneals for a DBM).

Inference and evaluation (Salakhutdinov & Hinton 2009, sections 2-3): :func:`mean_field` finds
the factorised posterior ``q(h | v)`` by fixed-point iteration to a tolerance, from the paper's
bottom-up pass with doubled weights (:func:`bottom_up`); :func:`lower_bound` turns it and a
``log Z`` into the variational lower bound on ``log p(v)``; :func:`exact_log_z` enumerates the odd
layers of a small DBM with the even ones summed out. AIS of ``log Z`` is
:func:`jdbn.likelihood.ais` (the tempered copy, odd layers summed). Training (mean-field positive
phase, persistent chains, greedy pretraining) plugs into the generic trainer and samplers.

A top layer of one :class:`jdbn.units.Softmax` group is a label block (the paper's MNIST model):
``mean_field(..., labels=y)`` clamps it as well (:func:`label_states`), and
:mod:`jdbn.models.dbm_labels` classifies with it.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jdbn import units as U
from jdbn.models import base
from jdbn.models._dbm_exact import exact_log_z  # noqa: F401  (public here)
from jdbn.samplers import gibbs as G

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

__all__ = ["DBM", "MeanField", "bottom_up", "entropy", "exact_log_z", "free_energy",
           "has_label_block", "init", "label_states", "lower_bound", "mean_field"]


@struct.dataclass
class DBM(base.BlockModel):
  """Params of a DBM: one weight matrix between each pair of neighbouring layers.

  Attributes:
    weights: ``(W_0, ..., W_{L-1})``, ``W_l: [n_l, n_{l+1}]``.
    biases: ``(a_0, ..., a_L)``, ``a_l: [n_l]``.
    log_sigmas: one ``[n_l]`` array per layer whose family has a learned sigma, else ``None``.
    units: the unit family of every layer (static).
  """

  weights: tuple
  biases: tuple
  log_sigmas: tuple
  units: tuple = struct.field(pytree_node=False)

  @property
  def sizes(self) -> tuple[int, ...]:
    return tuple(int(b.shape[-1]) for b in self.biases)

  @property
  def blocks(self) -> tuple[base.Block, ...]:
    names = ["v"] + [f"h{l}" for l in range(1, len(self.units))]
    return tuple(base.Block(n, u, s) for n, u, s in zip(names, self.units, self.sizes))

  @property
  def schedule(self) -> tuple[tuple[int, ...], ...]:
    layers = range(len(self.units))
    return (tuple(l for l in layers if l % 2), tuple(l for l in layers if not l % 2))

  def bias(self, i: int) -> Array:
    return self.biases[i]

  def log_sigma(self, i: int) -> Optional[Array]:
    return self.log_sigmas[i]

  def _scaled(self, states, l):
    """Layer ``l``'s state as it enters the couplings, ``s_l(x_l)`` (a centered DBM subtracts
    its offset here)."""
    return self.units[l].scaled(states[l], self.log_sigmas[l])

  def uncentered(self) -> "DBM":
    """The DBM without offsets that has this distribution: itself (a
    :class:`jdbn.models.centered.CenteredDBM` moves its offsets into the biases)."""
    return self

  def field(self, states, i: int) -> Array:
    phi = 0.0
    if i > 0:
      phi = phi + self._scaled(states, i - 1) @ self.weights[i - 1]
    if i < len(self.weights):
      phi = phi + self._scaled(states, i + 1) @ self.weights[i].T
    return phi

  def energy(self, states) -> Array:
    e = sum(u.energy(x, a, s) for u, x, a, s in zip(self.units, states, self.biases,
                                                     self.log_sigmas))
    for l, w in enumerate(self.weights):
      e = e - jnp.sum((self._scaled(states, l) @ w) * self._scaled(states, l + 1), axis=-1)
    return e

  def tempered(self, beta, base_biases=None) -> "DBM":
    beta = jnp.asarray(beta, self.weights[0].dtype)
    base_biases = (None,) * len(self.biases) if base_biases is None else tuple(base_biases)
    biases = tuple(beta * a if b0 is None else (1 - beta) * b0 + beta * a
                   for a, b0 in zip(self.biases, base_biases))
    return self.replace(weights=tuple(beta * w for w in self.weights), biases=biases)


def init(key: Array,
         sizes: Sequence[int],
         units: Optional[Sequence[U.Units]] = None,
         *,
         weight_scale: float = 0.01,
         data: Optional[ArrayLike] = None,
         dtype=jnp.float32) -> DBM:
  """A DBM with ``N(0, weight_scale^2)`` weights and zero biases.

  Args:
    key: PRNG key.
    sizes: ``(n_visible, n_h1, ..., n_hL)``, at least two layers.
    units: one family per layer; Bernoulli throughout by default.
    weight_scale: standard deviation of the initial weights.
    data: optional training data ``[n, n_visible]``: the visible biases are then set from its
      marginals as :func:`jdbn.models.rbm.init` does (Bernoulli: ``log(p / (1 - p))`` of the
      data's means ``p`` clipped to [1e-3, 1 - 1e-3], Hinton's guide, section 8; Gaussian: the
      data's mean, and a learned sigma its standard deviation). The hidden biases stay 0.
    dtype: float dtype.
  """
  sizes = tuple(sizes)
  if len(sizes) < 2:
    raise ValueError(f"a DBM needs at least two layers, got sizes {sizes}")
  units = (U.Bernoulli(),) * len(sizes) if units is None else tuple(units)
  if len(units) != len(sizes):
    raise ValueError(f"{len(units)} unit families for {len(sizes)} layers")
  for l, (u, n) in enumerate(zip(units, sizes)):
    u.check_size(n, f"sizes[{l}]")
  if not weight_scale > 0:
    raise ValueError(f"weight_scale must be positive, got {weight_scale}")
  keys = jax.random.split(key, len(sizes) - 1)
  weights = tuple(weight_scale * jax.random.normal(k, (m, n), dtype)
                  for k, m, n in zip(keys, sizes[:-1], sizes[1:]))
  biases = tuple(jnp.zeros((n,), dtype) for n in sizes)
  log_sigmas = tuple(jnp.zeros((n,), dtype) if u.has_sigma else None for u, n in zip(units, sizes))
  model = DBM(weights, biases, log_sigmas, units)
  return model if data is None else _visible_from_data(model, data)


def _visible_from_data(model: DBM, data: ArrayLike) -> DBM:
  """``model`` with the visible bias (and a learned sigma) set from the marginals of ``data``
  ``[n, n_visible]`` by the visible family's :meth:`~jdbn.units.Units.init_bias`."""
  data = np.asarray(data, np.float64)
  if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] != model.sizes[0]:
    raise ValueError(f"data must have shape [n, {model.sizes[0]}] with n >= 1, got "
                     f"{data.shape}: the initial visible biases are taken from its marginals")
  if not np.all(np.isfinite(data)):
    raise ValueError("data holds NaN or infinite values")
  dtype, sigma = model.biases[0].dtype, model.log_sigmas[0]
  b, sig = model.units[0].init_bias(data, None if sigma is None else np.asarray(sigma))
  return model.replace(biases=(jnp.asarray(b, dtype),) + model.biases[1:],
                       log_sigmas=(None if sig is None else jnp.asarray(sig, dtype),) +
                       model.log_sigmas[1:])


def free_energy(model: DBM, states: Sequence[Optional[Array]]) -> Array:
  """``F(x_even) = -log sum_{x_odd} exp(-E)``: the odd layers summed out, ``-> [...]``.

  ``states`` holds every layer; the odd ones are not read (``None`` will do).
  """
  states = list(states)
  ref = states[0]
  for l in range(1, len(states), 2):
    if states[l] is None:
      states[l] = jnp.zeros(jnp.shape(ref)[:-1] + (model.sizes[l],), jnp.result_type(ref))
  return base.free_energy(model, states, model.schedule[0])


# ----------------------------------------------------------------------------- inference


class MeanField(NamedTuple):
  """The result of :func:`mean_field`.

  Attributes:
    states: ``(v, q_1, ..., q_L)``: the data and the mean of every hidden layer under ``q``.
    n_iter: fixed-point sweeps run (int32 scalar).
    delta: the largest change of any ``q`` in the last sweep.
    converged: ``delta <= tol`` (False when the sweep cap stopped the iteration).
  """
  states: tuple
  n_iter: Array
  delta: Array
  converged: Array


def _check_data(model: DBM, v) -> Array:
  v = jnp.asarray(v, model.biases[0].dtype)
  if v.shape[-1:] != (model.sizes[0],):
    raise ValueError(f"v must have shape [..., {model.sizes[0]}], got {tuple(v.shape)}")
  if not isinstance(v, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(v))):
    raise ValueError("v holds NaN or infinite values")
  return v


def has_label_block(model: DBM) -> bool:
  """Whether ``model``'s top layer is a label block (one :class:`~jdbn.units.Softmax` group above
  at least one hidden layer; see :func:`label_states`)."""
  top = model.units[-1]
  return len(model.sizes) >= 3 and isinstance(top, U.Softmax) and top.group_size == model.sizes[-1]


def label_states(model: DBM, labels: jax.typing.ArrayLike, batch_shape: Sequence[int]) -> Array:
  """The label block's states for ``labels``: ``-> [*batch_shape, n_classes]`` one-hot rows.

  The label block is a top layer of one :class:`~jdbn.units.Softmax` group above at least one
  hidden layer. ``labels`` are class indices ``[...]`` (ints in ``[0, n_classes)``) or one-hot
  rows ``[..., n_classes]`` (one more axis than ``batch_shape``), broadcast to ``batch_shape``.
  Concrete labels are checked (under ``jit`` their values cannot be).

  Raises:
    ValueError: no label block; labels of another shape or dtype, out of range, not one-hot, NaN.
  """
  n, top, batch_shape = model.sizes[-1], model.units[-1], tuple(batch_shape)
  if not has_label_block(model):
    raise ValueError(f"labels need a label block: a top layer of one Softmax group above at least "
                     f"one hidden layer, got sizes {model.sizes} with {type(top).__name__} on top")
  labels = jnp.asarray(labels)
  concrete = not isinstance(labels, jax.core.Tracer)
  if concrete and not bool(jnp.all(jnp.isfinite(labels))):
    raise ValueError("labels hold NaN or infinite values")
  if labels.ndim == len(batch_shape) + 1:  # one-hot rows
    if labels.shape[-1] != n:
      raise ValueError(f"one-hot labels must have {n} columns, got shape {tuple(labels.shape)}")
    a = np.asarray(labels) if concrete else None
    if a is not None and not (np.all((a == 0) | (a == 1)) and np.all(a.sum(-1) == 1)):
      raise ValueError("one-hot labels must hold one 1 and otherwise 0 in every row")
    y = labels.astype(model.biases[-1].dtype)
  else:
    if not jnp.issubdtype(labels.dtype, jnp.integer):
      raise ValueError(f"labels must be int class indices [...] or one-hot [..., {n}], got "
                       f"{labels.dtype} of shape {tuple(labels.shape)}")
    if concrete and labels.size and not (0 <= int(labels.min()) <= int(labels.max()) < n):
      raise ValueError(f"labels must lie in [0, {n}), got values from {int(labels.min())} to "
                       f"{int(labels.max())}")
    y = jax.nn.one_hot(labels, n, dtype=model.biases[-1].dtype)
  try:
    return jnp.broadcast_to(y, batch_shape + (n,))
  except ValueError:
    raise ValueError(f"labels of shape {tuple(labels.shape)} do not fit the data's batch shape "
                     f"{batch_shape}") from None


def bottom_up(model: DBM, v: Array, labels: Optional[jax.typing.ArrayLike] = None) -> tuple:
  """The recognition pass that starts mean-field: ``(v, q_1, ..., q_L)``.

  Salakhutdinov & Hinton (2009), section 3: every hidden layer but the top gets twice its input
  from below (standing in for the missing top-down input), ``q_l = mean(2 s(q_{l-1}) W_{l-1} +
  a_l)``, the top layer ``q_L = mean(s(q_{L-1}) W_{L-1} + a_L)``. A centered DBM takes the pass
  of its uncentered equivalent, so that both start mean-field from the same ``q``.

  With ``labels`` (see :func:`label_states`) the label block ``L`` holds them, and the layer
  below, whose top-down input is then known, gets its input from below once and the labels'
  (as in the paper's code): ``q_{L-1} = mean(s(q_{L-2}) W_{L-2} + y W_{L-1}^T + a_{L-1})``.
  """
  v = _check_data(model, v)
  y = None if labels is None else label_states(model, labels, v.shape[:-1])
  model = model.uncentered()  # the same pass for a centered DBM and its uncentered equivalent
  states = [v]
  top = len(model.sizes) - 1 - (y is not None)  # the highest layer the pass infers
  for l in range(1, top + 1):
    below = model.units[l - 1].scaled(states[-1], model.log_sigmas[l - 1])
    phi = (1.0 if l == top else 2.0) * (below @ model.weights[l - 1])
    if y is not None and l == top:
      phi = phi + y @ model.weights[l].T
    states.append(model.units[l].mean(phi, model.biases[l], model.log_sigmas[l]))
  return tuple(states) + (() if y is None else (y,))


def mean_field(model: DBM, v: Array, *, labels: Optional[jax.typing.ArrayLike] = None,
               tol: float = 1e-6, max_iter: int = 100,
               init: Union[str, Sequence[Array]] = "bottom_up") -> MeanField:
  """The factorised posterior ``q(h | v)`` (or ``q(h | v, y)``) that maximises the variational
  bound.

  Iterates the fixed-point equations ``q_l = E[h_l | s(q_{l-1}), s(q_{l+1})]`` (Salakhutdinov &
  Hinton 2009, eq. 9), odd layers then even ones (the Gibbs schedule with every hidden unit at its
  mean and ``v`` clamped), in a ``lax.while_loop`` until no ``q`` changes by more than ``tol`` or
  ``max_iter`` sweeps have run (the paper's code stops at a change of 1e-7 in float64; float32
  settles near 1e-7 of its own rounding, hence the default ``tol``).

  Args:
    model: DBM params.
    v: ``[..., n_visible]`` data.
    labels: optional class indices ``[...]`` or one-hot ``[..., n_classes]`` (see
      :func:`label_states`): the label block (the top layer) is clamped at them as well, and
      ``states[-1]`` holds them one-hot. Without, a label block is free like any hidden layer.
    tol: stopping change (max over units and examples).
    max_iter: sweep cap (static); ``MeanField.converged`` says whether it was hit.
    init: ``"bottom_up"`` (:func:`bottom_up`, with the labels), ``"zeros"``, or ``(v, q_1, ...,
      q_L)`` to warm start (e.g. the previous epoch's ``q``; with labels its ``q_L`` is not read).

  Returns:
    A :class:`MeanField`.
  """
  if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
    raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
  if not tol >= 0:
    raise ValueError(f"tol must be >= 0, got {tol!r}")
  v = _check_data(model, v)
  y = None if labels is None else label_states(model, labels, v.shape[:-1])
  if isinstance(init, str):
    if init not in ("bottom_up", "zeros"):
      raise ValueError(f"init must be 'bottom_up', 'zeros' or a state tuple, got {init!r}")
    states = (bottom_up(model, v, y) if init == "bottom_up" else
              (v,) + tuple(jnp.zeros(v.shape[:-1] + (n,), v.dtype) for n in model.sizes[1:]))
  else:
    states = (v,) + tuple(jnp.asarray(q, v.dtype) for q in tuple(init)[1:])
  top = len(model.sizes) - 1
  clamp = {0: True} if y is None else {0: True, top: True}
  if y is not None:
    states = tuple(states[:-1]) + (y,)
  hidden = {l: True for l in range(1, len(model.sizes)) if l not in clamp}
  key = jax.random.key(0)  # unused: every free unit takes its mean

  def cond(carry):
    _, it, delta = carry
    return (it < max_iter) & (delta > tol)

  def body(carry):
    q, it, _ = carry
    new, _ = G.step(key, model, q, clamp=clamp, mean_field=hidden)
    delta = jnp.max(jnp.stack([jnp.max(jnp.abs(a - b)) for a, b in zip(new[1:], q[1:])]))
    return new, it + 1, delta

  init_carry = (tuple(states), jnp.int32(0), jnp.asarray(jnp.inf, v.dtype))
  q, n_iter, delta = jax.lax.while_loop(cond, body, init_carry)
  return MeanField(q, n_iter, delta, delta <= tol)


def entropy(units: U.Units, q: Array) -> Array:
  """``H(q)`` of independent units with means ``q`` (Bernoulli, or Softmax groups): ``-> [...]``."""
  if isinstance(units, U.Bernoulli):
    return -jnp.sum(jax.scipy.special.xlogy(q, q) + jax.scipy.special.xlogy(1 - q, 1 - q), -1)
  if isinstance(units, U.Softmax):  # one categorical per group of group_size units
    return -jnp.sum(jax.scipy.special.xlogy(q, q), -1)
  raise ValueError(f"the mean-field entropy needs Bernoulli or Softmax hidden units, got "
                   f"{type(units).__name__}")


def lower_bound(model: DBM, states: Sequence[Array], log_z: Array) -> Array:
  """The variational lower bound on ``log p(v)``: ``-> [...]`` nats.

  ``log p(v) >= -E_q[E(v, h)] + H(q) - log Z`` for any factorised ``q`` (Salakhutdinov & Hinton
  2009, eq. 7); with ``q`` from :func:`mean_field`, the paper's test-set bound. The energy is
  linear in each layer's states, so ``E_q[E(v, h)] = E(v, q_1, ..., q_L)``.

  Args:
    model: DBM params (Bernoulli or Softmax hidden layers).
    states: ``(v, q_1, ..., q_L)``, e.g. ``mean_field(model, v).states``.
    log_z: ``log Z`` of the same model (exact, or an AIS estimate or bound; with AIS's estimate
      the bound holds in expectation only). A centered DBM's energy, and so its ``log Z``, differ
      from its uncentered equivalent's by one constant: use one model's for both.
  """
  states = tuple(states)
  h = sum(entropy(model.units[l], states[l]) for l in range(1, len(states)))
  return -model.energy(states) + h - log_z
