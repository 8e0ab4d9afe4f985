"""Greedy layer-wise pretraining of a DBM with the modified RBMs of Salakhutdinov & Hinton (2009).

A DBM's hidden layer ``l`` gets input from below *and* above, a stack of RBMs from below only.
To make the stack's inference match the DBM's once composed, the RBMs are trained with their
inputs scaled (section 3.1 of the 2009 paper; Salakhutdinov & Hinton 2012, section 4):

* the first RBM counts its visible input twice when it infers the hidden units (``p(h | v) =
  mean(2 v W + c)``), and once when it reconstructs ``v``;
* the last RBM counts the top-down input twice (``p(h_{L-1} | h_L) = mean(2 W h_L + b)``);
* a middle RBM counts both directions twice, and its weights are halved when composed.

Each is a :class:`ScaledRBM` (an RBM whose two fields carry static factors) trained by CD-k with
the generic trainer (:func:`jdbn.train.contrastive.trainer`) and any Optax optimizer, on the
previous layer's mean activations computed with that layer's doubled recognition input, as the
paper's code does. :func:`compose` builds the DBM: the first RBM's visible biases, every RBM's
hidden biases, the weights (halved for middle layers).

With ``labels`` (the paper's MNIST model, ``784-500-1000`` with 10 label units on top), the last
RBM reads ``[h_{L-1}, one_hot(y)]`` (a :class:`jdbn.units.Joint` visible layer) and the composed
DBM gets the label block as its top layer, coupled to ``h_L`` by the label part of that RBM's
weights. The label units have one neighbour in the DBM, so their top-down input is not doubled.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jdbn import units as U
from jdbn.models import base
from jdbn.models import dbm as D
from jdbn.models import rbm as R
from jdbn.samplers import gibbs as G
from jdbn.train import contrastive
from jdbn.train import loop
from jdbn.train import phases as PH

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


@struct.dataclass
class ScaledRBM(base.BlockModel):
  """An RBM whose hidden field is ``up * s(v) W`` and visible field ``down * s(h) W^T``.

  ``up = down = 1`` is the RBM itself. The energy (the training score) is the RBM's; with scaled
  fields the sampler is Salakhutdinov & Hinton's modified RBM, not a Gibbs sampler of it.
  """
  rbm: R.RBM
  up: float = struct.field(pytree_node=False, default=1.0)
  down: float = struct.field(pytree_node=False, default=1.0)
  n_unscaled: int = struct.field(pytree_node=False, default=0)  # last visible units, not scaled

  @property
  def blocks(self):
    return self.rbm.blocks

  @property
  def schedule(self):
    return self.rbm.schedule

  def bias(self, i):
    return self.rbm.bias(i)

  def log_sigma(self, i):
    return self.rbm.log_sigma(i)

  def field(self, states, i):
    f = self.rbm.field(states, i)
    if i == 1 or not self.n_unscaled:
      return (self.up if i == 1 else self.down) * f
    n = f.shape[-1] - self.n_unscaled
    return jnp.concatenate([self.down * f[..., :n], f[..., n:]], axis=-1)

  def energy(self, states):
    return self.rbm.energy(states)

  def tempered(self, beta, base_biases=None):
    raise NotImplementedError("a ScaledRBM is a training device; anneal the composed DBM instead")


def _cd_phases(k: int) -> PH.Phases:
  """CD-k for a :class:`ScaledRBM`: statistics of ``(v, E[h | v])`` at the data and after ``k``
  sweeps from ``h ~ p(h | data)``."""

  def positive(key, model, batch):
    q = base.conditional_mean(model, (batch, None), 1)
    h = model.blocks[1].units.sample(key, model.field((batch, None), 1), model.bias(1),
                                     model.log_sigma(1))
    return PH.Positive((batch, q), (batch, h))

  def sample(key, model, chains, pos):
    del chains
    v, h = pos.start
    state, _ = G.chain(key, model, (v, h), k, schedule=((0,), (1,)))
    v = state[0]
    return None, (v, base.conditional_mean(model, (v, None), 1))

  return PH.Phases(positive, PH.NegativePhase(lambda key, model: None, sample), PH.energy_score)


def scales(n_layers: int, layer: int) -> tuple[float, float]:
  """``(up, down)`` of the RBM between layers ``layer`` and ``layer + 1`` of an ``n_layers`` DBM."""
  first, last = layer == 0, layer == n_layers - 2
  if first and last:
    return 1.0, 1.0  # a one-hidden-layer DBM is an RBM
  return (2.0 if not last else 1.0), (2.0 if not first else 1.0)


def compose(rbms: Sequence[R.RBM], n_labels: int = 0) -> D.DBM:
  """The DBM of pretrained RBMs: weights (middle ones halved), visible biases of the first RBM,
  hidden biases of each RBM. With ``n_labels``, the last RBM's last ``n_labels`` visible units
  (a :class:`jdbn.units.Joint` label part, at least two RBMs) become the DBM's top layer, with
  their visible biases and the transposed label rows of its weights."""
  n = len(rbms)
  weights = [r.W * (0.5 if 0 < l < n - 1 else 1.0) for l, r in enumerate(rbms)]
  biases = [rbms[0].b] + [r.c for r in rbms]
  log_sigmas = [rbms[0].log_sigma_v] + [r.log_sigma_h for r in rbms]
  units = [rbms[0].visible] + [r.hidden for r in rbms]
  if n_labels:
    top = rbms[-1]
    if n < 2 or not isinstance(top.visible, U.Joint) or top.visible.parts[-1][1] != n_labels:
      raise ValueError(f"n_labels={n_labels} needs at least two RBMs, the last with a Joint "
                       f"visible layer whose last part has {n_labels} units")
    k = top.W.shape[0] - n_labels
    weights[-1], w_labels = weights[-1][:k], weights[-1][k:].T
    weights.append(w_labels)
    biases.append(top.b[k:])
    log_sigmas.append(None)
    units.append(top.visible.parts[-1][0])
  return D.DBM(tuple(weights), tuple(biases), tuple(log_sigmas), tuple(units))


def pretrain(key: Array,
             data: Array,
             sizes: Sequence[int],
             *,
             epochs: Union[int, Sequence[int]],
             batch_size: int = 100,
             optimizer: Union[optax.GradientTransformation,
                              Callable[[int], optax.GradientTransformation]] = None,
             k: int = 1,
             weight_scale: float = 0.01,
             labels: Optional[ArrayLike] = None,
             n_classes: int = 10,
             progress: bool = True) -> tuple[D.DBM, list[list[dict]]]:
  """Greedy pretraining of a DBM of layer sizes ``sizes`` (Bernoulli units) on ``data``, with a
  label block on top when ``labels`` are given.

  Args:
    key: PRNG key (layer ``l`` uses ``fold_in(key, l)``).
    data: ``[n, sizes[0]]`` in [0, 1].
    sizes: ``(n_visible, n_h1, ..., n_hL)``.
    epochs: epochs per RBM (one int, or one per layer).
    batch_size: mini-batch size.
    optimizer: an Optax transformation, or ``layer -> transformation``; default SGD 0.05 with
      momentum 0.5.
    k: CD-k sweeps.
    weight_scale: initial weight scale of each RBM.
    labels: optional ``[n]`` int class indices in ``[0, n_classes)``: the last RBM reads
      ``[h, one_hot(labels)]`` and the DBM's top layer is a label block of ``n_classes`` units
      (needs at least two hidden layers).
    n_classes: the label block's size.
    progress: tqdm bars.

  Returns:
    ``(dbm, histories)``: the composed :class:`~jdbn.models.dbm.DBM` (sizes ``sizes``, then
    ``n_classes`` with labels) and each RBM's epoch rows.
  """
  sizes, data, per_layer = _check(data, sizes, epochs)
  one_hot = None if labels is None else _one_hot(labels, data.shape[0], sizes, n_classes)
  make = optimizer if callable(optimizer) and not isinstance(
      optimizer, optax.GradientTransformation) else (lambda layer: optimizer or
                                                     optax.sgd(0.05, momentum=0.5))
  rbms, histories, x = [], [], data
  for layer in range(len(sizes) - 1):
    k_layer = jax.random.fold_in(key, layer)
    top_labels = one_hot is not None and layer == len(sizes) - 2
    if top_labels:
      x = jnp.concatenate([x, one_hot], axis=-1)
    model = _layer_rbm(jax.random.fold_in(k_layer, 0), sizes, layer, x, weight_scale,
                       n_classes if top_labels else 0)
    model, history = _train_layer(k_layer, model, x, per_layer[layer], batch_size, make(layer),
                                  k, f"dbm rbm {layer + 1}" if progress else False)
    rbms.append(model.rbm)
    histories.append(history)
    if layer < len(sizes) - 2:
      x = _recognise(model, x, batch_size)
  return compose(rbms, n_classes if one_hot is not None else 0), histories


def _check(data, sizes, epochs) -> tuple[tuple, Array, list]:
  """``(sizes, data, epochs per RBM)`` checked; ValueError for what does not fit."""
  sizes = tuple(int(s) for s in sizes)
  if len(sizes) < 2:
    raise ValueError(f"a DBM needs at least two layers, got sizes {sizes}")
  data = jnp.asarray(data, jnp.float32)
  if data.ndim != 2 or data.shape[1] != sizes[0]:
    raise ValueError(f"data must have shape [n, {sizes[0]}], got {tuple(data.shape)}")
  per_layer = [epochs] * (len(sizes) - 1) if isinstance(epochs, int) else list(epochs)
  if len(per_layer) != len(sizes) - 1:
    raise ValueError(f"epochs must be an int or one per RBM ({len(sizes) - 1}), got {epochs!r}")
  return sizes, data, per_layer


def _layer_rbm(key, sizes: tuple, layer: int, x: Array, weight_scale: float,
               n_labels: int) -> ScaledRBM:
  """The fresh :class:`ScaledRBM` between layers ``layer`` and ``layer + 1``, its visible layer
  joined by ``n_labels`` label units (the last RBM, with labels)."""
  up, down = scales(len(sizes), layer)
  visible, n_vis = U.Bernoulli(), sizes[layer]
  if n_labels:
    visible = U.Joint(((U.Bernoulli(), n_vis), (U.Softmax(n_labels), n_labels)))
    n_vis += n_labels
  rbm = R.init(key, n_vis, sizes[layer + 1], visible, weight_scale=weight_scale,
               data=np.asarray(x) if layer == 0 else None)
  return ScaledRBM(rbm, up, down, n_labels)


def _one_hot(labels: ArrayLike, n: int, sizes: tuple, n_classes: int) -> Array:
  """Checked ``[n]`` class indices as one-hot rows ``[n, n_classes]``."""
  if len(sizes) < 3:
    raise ValueError(f"a label block sits above at least two hidden layers here (the last RBM "
                     f"reads [h, labels]); got sizes {sizes}")
  y = np.asarray(labels)
  if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"labels must be [{n}] int class indices, got {y.dtype} of shape {y.shape}")
  if y.size and not (0 <= y.min() and y.max() < n_classes):
    raise ValueError(f"labels must lie in [0, {n_classes}), got values from {y.min()} to "
                     f"{y.max()}")
  return jax.nn.one_hot(jnp.asarray(y), n_classes, dtype=jnp.float32)


def _train_layer(key, model, x, epochs, batch_size, optimizer, k, progress):
  trainer = contrastive.trainer(optimizer, _cd_phases(int(k)),
                                {"algorithm": "dbm-pretrain-cd", "k": int(k)})
  state = trainer.init(jax.random.fold_in(key, 1), model)

  def epoch_fn(e, state):
    state, info = trainer.epoch(jax.random.fold_in(jax.random.fold_in(key, 2), e), state, x,
                                batch_size)
    return state, {f: float(v) for f, v in zip(info._fields, info)}

  state, history = loop.fit(state, epoch_fn, epochs=int(epochs), progress=progress,
                            postfix=("loss", "recon_error"))
  return state.params, history


def _recognise(model: ScaledRBM, x: Array, batch_size: int) -> Array:
  """The next RBM's data: ``E[h | v]`` with this RBM's (doubled) recognition input."""
  mean = jax.jit(lambda m, v: base.conditional_mean(m, (v, None), 1))
  return jnp.concatenate([mean(model, x[i:i + 10 * batch_size])
                          for i in range(0, x.shape[0], 10 * batch_size)])
