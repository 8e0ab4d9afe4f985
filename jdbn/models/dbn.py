"""The Deep Belief Network as a model: a stack of RBMs, its checks, passes, labels and classifier.

A DBN here is nothing exotic: a tuple of :class:`jdbn.models.rbm.RBM` params
``(rbm_1, ..., rbm_L)`` where the hidden layer of ``rbm_l`` is the visible layer of ``rbm_{l+1}``.
The top RBM is an undirected associative memory; the layers below it are directed generative
connections ``p(h_{l-1} | h_l)`` that, after greedy training, share their weights with the
recognition connections ``q(h_l | h_{l-1})`` (Hinton, Osindero & Teh 2006, "A fast learning
algorithm for deep belief nets", Neural Computation 18). With labels, the top RBM's visible layer
is the penultimate representation joined by one-hot label units,
``Joint(((Bernoulli(), n_penultimate), (Softmax(10), 10)))``: the 784-500-500-2000+10 network of
that paper.

This module holds what a DBN *is* and computes without training or sampling it: the structure
and its checks (:func:`check`, :func:`layer_sizes`, :func:`untie`), the label layer, the
mean-field up and down passes and generative classification (:func:`classify`). The layer
conditionals and the bound on ``log p(v)`` are :mod:`jdbn.models.dbn_likelihood`, greedy
pretraining :mod:`jdbn.train.pretrain`, up-down fine-tuning :mod:`jdbn.train.updown_step`,
generation :mod:`jdbn.samplers.dbn`; :mod:`jdbn.dbn` re-exports them all.

Up-down fine-tuning unties recognition and generative weights (:class:`UntiedDBN`); every
function that reads a DBN accepts either a tuple of RBMs or an :class:`UntiedDBN` (recognition
weights for up passes, generative weights for down passes).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jdbn import units as U
from jdbn.models import rbm as R

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


@struct.dataclass
class UntiedDBN:
  """A DBN whose lower layers have separate recognition and generative weights.

  Up-down fine-tuning (Hinton, Osindero & Teh 2006, section 5 and appendix B) trains the
  recognition connections ``q(h_l | h_{l-1})`` and the generative connections
  ``p(h_{l-1} | h_l)`` of every layer below the top separately. Each lower layer ``l`` keeps two
  RBM params pytrees of the same shape; only the parts a direction uses are read (and trained):

  Attributes:
    recognition: tuple of ``L - 1`` :class:`jdbn.rbm.RBM`; layer ``l`` gives
      ``q(h_l | h_{l-1}) = p_hidden(h_l | W_l, c_l)``, i.e. :func:`jdbn.rbm.hidden_mean` and
      :func:`jdbn.rbm.sample_hidden` (``W`` and ``c``; its ``b`` is unused).
    generative: tuple of ``L - 1`` RBMs; layer ``l`` gives ``p(h_{l-1} | h_l)`` through
      :func:`jdbn.rbm.visible_mean` and :func:`jdbn.rbm.sample_visible` (``W`` and ``b``; its
      ``c`` is unused).
    top: the top-level RBM (the associative memory), with label units if the DBN has them.
  """
  recognition: tuple
  generative: tuple
  top: R.RBM


DBN = Union[Sequence[R.RBM], UntiedDBN]


# --------------------------------------------------------------------------- structure


def _parts(model: DBN) -> tuple[tuple, tuple, R.RBM]:
  """``(recognition, generative, top)`` of a tied or untied DBN."""
  if isinstance(model, UntiedDBN):
    return tuple(model.recognition), tuple(model.generative), model.top
  if isinstance(model, R.RBM):
    model = (model,)
  layers = tuple(model)
  if not layers or not all(isinstance(p, R.RBM) for p in layers):
    raise TypeError("a DBN is a non-empty sequence of jdbn.rbm.RBM params (or an UntiedDBN), "
                    f"got {type(model).__name__}")
  return layers[:-1], layers[:-1], layers[-1]


def n_labels(model: Union[DBN, R.RBM]) -> int:
  """Number of label units of the top RBM (0 if it has none).

  The top RBM has labels when its visible family is a :class:`jdbn.units.Joint` whose last block
  is one :class:`jdbn.units.Softmax` group, e.g. ``Joint(((Bernoulli(), 500), (Softmax(10), 10)))``.
  """
  top = model if isinstance(model, R.RBM) else _parts(model)[2]
  vis = top.visible
  if isinstance(vis, U.Joint) and len(vis.parts) >= 2:
    units, n = vis.parts[-1]
    if isinstance(units, U.Softmax) and n == units.group_size:
      return n
  return 0


def n_penultimate(model: Union[DBN, R.RBM]) -> int:
  """Size of the top RBM's visible layer without its label units."""
  top = model if isinstance(model, R.RBM) else _parts(model)[2]
  return top.n_visible - n_labels(top)


def check(model: DBN) -> None:
  """Raises ``ValueError`` if consecutive layers' sizes do not chain up.

  Layer ``l``'s hidden layer must be layer ``l + 1``'s visible layer (the top RBM's visible layer
  less its label units), and recognition and generative weights must have the same shapes.
  """
  rec, gen, top = _parts(model)
  if len(rec) != len(gen):
    raise ValueError(f"{len(rec)} recognition but {len(gen)} generative layers")
  sizes = [(p.n_visible, p.n_hidden) for p in rec]
  if [(p.n_visible, p.n_hidden) for p in gen] != sizes:
    raise ValueError("recognition and generative layers have different shapes: "
                     f"{sizes} vs {[(p.n_visible, p.n_hidden) for p in gen]}")
  uppers = [p.n_visible for p in rec[1:]] + [n_penultimate(top)]
  for l, (p, n_up) in enumerate(zip(rec, uppers)):
    if p.n_hidden != n_up:
      raise ValueError(f"layer {l} has {p.n_hidden} hidden units but the layer above takes "
                       f"{n_up} inputs")


def layer_sizes(model: DBN) -> list[int]:
  """``[n_visible, n_1, ..., n_top]``, the sizes of the layers of units (labels excluded)."""
  rec, _, top = _parts(model)
  return [p.n_visible for p in rec] + [n_penultimate(top), top.n_hidden]


def untie(dbn: DBN) -> UntiedDBN:
  """The :class:`UntiedDBN` whose recognition and generative weights are both the tied ones."""
  if isinstance(dbn, UntiedDBN):
    return dbn
  rec, gen, top = _parts(dbn)
  check(dbn)
  return UntiedDBN(rec, gen, top)


def _check_label_values(labels, n: int) -> None:
  """Raises ValueError unless every (concrete) label lies in ``[0, n)``; under ``jit`` the
  values are unknown and ``one_hot`` would silently give all-zero rows, so check before it."""
  if n == 0 or isinstance(labels, jax.core.Tracer) or np.size(labels) == 0:
    return  # no label units: the callers say so themselves
  a = np.asarray(labels)
  if a.min() < 0 or a.max() >= n:
    raise ValueError(f"labels must lie in [0, {n}), got values from {a.min()} to {a.max()}")


def _one_hot(labels: ArrayLike, n: int, dtype, batch_ndim: int) -> Array:
  """Int labels ``[...]`` to one-hot ``[..., n]``; one-hot input (one more axis) is kept."""
  labels = jnp.asarray(labels)
  if labels.ndim == batch_ndim + 1:
    if labels.shape[-1] != n:
      raise ValueError(f"one-hot labels must have {n} columns, got shape {tuple(labels.shape)}")
    return labels.astype(dtype)
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise TypeError(f"labels must be ints (or one-hot), got dtype {labels.dtype}")
  return jax.nn.one_hot(labels, n, dtype=dtype)


def _top_visible(top: R.RBM, pen: Array, labels: Optional[ArrayLike]) -> Array:
  """The top RBM's visible state: ``pen`` joined by one-hot ``labels`` (zeros if ``None``)."""
  k = n_labels(top)
  if not k:
    return pen
  lab = (jnp.zeros(pen.shape[:-1] + (k,), pen.dtype)
         if labels is None else _one_hot(labels, k, pen.dtype, pen.ndim - 1))
  return jnp.concatenate([pen, jnp.broadcast_to(lab, pen.shape[:-1] + (k,))], axis=-1)


# --------------------------------------------------------------------------- passes


def penultimate(model: DBN, v: ArrayLike) -> Array:
  """Mean-field up pass through the layers below the top RBM.

  ``x_0 = v``, ``x_l = E_q[h_l | x_{l-1}]`` (``sigmoid(c_l + x_{l-1} W_l)`` for Bernoulli units),
  through the recognition weights.

  Args:
    model: a DBN (tuple of RBMs or :class:`UntiedDBN`).
    v: data, ``[..., n_visible]``.

  Returns:
    ``[..., n_penultimate]``, the input of the top RBM (without labels); ``v`` itself for a
    one-layer DBN.
  """
  rec, _, _ = _parts(model)
  x = jnp.asarray(v)
  for p in rec:
    x = R.hidden_mean(p, x)
  return x


def up_pass(model: DBN, v: ArrayLike, *, labels: Optional[ArrayLike] = None) -> list[Array]:
  """Mean-field up pass through every layer: the deterministic recognition pass.

  Args:
    model: a DBN.
    v: data, ``[..., n_visible]``.
    labels: for a top RBM with label units, ``[...]`` int labels (or one-hot ``[..., n_labels]``)
      joined to the penultimate layer. If ``None`` the label units are off (all zero), which is
      what the top hidden layer of the discriminative network of :mod:`jdbn.finetune` computes:
      ``sigmoid(c_top + x_pen W_top[:n_pen])``.

  Returns:
    ``[x_1, ..., x_L]``: the mean of each hidden layer, ``x_l: [..., n_l]``.
  """
  rec, _, top = _parts(model)
  x = jnp.asarray(v)
  out = []
  for p in rec:
    x = R.hidden_mean(p, x)
    out.append(x)
  out.append(R.hidden_mean(top, _top_visible(top, x, labels)))
  return out


def down_pass(model: DBN, pen: ArrayLike) -> Array:
  """Mean-field down pass through the generative weights, from the penultimate layer to the data.

  ``x_{l-1} = E_p[h_{l-1} | x_l]`` (``sigmoid(b_l + x_l W_l^T)`` for Bernoulli units).

  Args:
    model: a DBN.
    pen: ``[..., n_penultimate]`` states of the top RBM's visible layer, without labels.

  Returns:
    ``[..., n_visible]`` data-space means (``pen`` itself for a one-layer DBN).
  """
  _, gen, _ = _parts(model)
  x = jnp.asarray(pen)
  for p in reversed(gen):
    x = R.visible_mean(p, x)
  return x


# --------------------------------------------------------------------------- classification


def label_free_energies(top: R.RBM, pen: ArrayLike) -> Array:
  """Free energy of the top RBM for every label: ``F(pen, e_k)`` for ``k = 0..n_labels-1``.

  Computes the hidden input ``s(pen) W[:n_pen]`` once and adds each label's weight row, so it
  costs one matrix product, not ``n_labels``.

  Args:
    top: the top RBM, with label units.
    pen: ``[..., n_penultimate]``.

  Returns:
    ``[..., n_labels]``; ``p(label = k | pen) = softmax(-F)_k`` exactly, since
    ``p(pen, k) ∝ exp(-F(pen, e_k))`` (Hinton, Osindero & Teh 2006, section 6).
  """
  k = n_labels(top)
  if not k:
    raise ValueError("the top RBM has no label units (its visible family must be a Joint ending "
                     f"in one Softmax group), got {top.visible!r}")
  n_pen = top.n_visible - k
  pen = jnp.asarray(pen, top.W.dtype)
  eye = jnp.eye(k, dtype=pen.dtype)
  vis = jnp.concatenate([
      jnp.broadcast_to(pen[..., None, :], pen.shape[:-1] + (k, n_pen)),
      jnp.broadcast_to(eye, pen.shape[:-1] + (k, k))
  ], axis=-1)  # [..., k, n_visible]
  scaled = top.visible.scaled(vis, top.log_sigma_v)
  phi = (scaled[..., 0, :n_pen] @ top.W[:n_pen])[..., None, :] + eye @ top.W[n_pen:]
  return (top.visible.energy(vis, top.b, top.log_sigma_v) -
          top.hidden.log_partition(phi, top.c, top.log_sigma_h))


def label_log_probs(model: DBN, v: ArrayLike, *, batch_size: Optional[int] = None) -> Array:
  """``log p(label | x_pen)`` under the top RBM, ``x_pen`` the mean-field up pass of ``v``.

  Args:
    model: a DBN whose top RBM has label units.
    v: ``[n, n_visible]`` (or ``[n_visible]``) data.
    batch_size: if given (and ``v`` is 2-D), computed in chunks of this many examples with
      ``jax.lax.map`` to bound memory (``n * n_labels * n_top`` floats otherwise).

  Returns:
    ``[..., n_labels]`` log-probabilities, ``log_softmax(-F_top(x_pen, e_k))``.
  """
  _, _, top = _parts(model)

  def one(x):
    return jax.nn.log_softmax(-label_free_energies(top, penultimate(model, x)), axis=-1)

  v = jnp.asarray(v)
  if batch_size is None or v.ndim != 2:
    return one(v)
  return jax.lax.map(one, v, batch_size=batch_size)


def classify(model: DBN, v: ArrayLike, *, batch_size: Optional[int] = None) -> Array:
  """Generative classification: the label with the lowest top-level free energy.

  ``argmin_k F_top(x_pen, e_k) = argmax_k p(k | x_pen)`` (Hinton, Osindero & Teh 2006, section 6:
  "the label with the lowest free energy").

  Args:
    model: a DBN whose top RBM has label units.
    v: ``[..., n_visible]`` data.
    batch_size: optional chunk size, see :func:`label_log_probs`.

  Returns:
    ``[...]`` int32 labels.
  """
  return jnp.argmax(label_log_probs(model, v, batch_size=batch_size), axis=-1).astype(jnp.int32)
