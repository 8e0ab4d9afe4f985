"""Greedy layer-wise training of a convolutional DBN, and a linear (softmax) classifier on its
features, both with Optax.

:func:`greedy` trains layer 1 on the images with any contrastive trainer (e.g.
:func:`jdbn.train.conv.cd`), computes its pooling units' probabilities
(:func:`jdbn.models.cdbn.up`) and trains layer 2 on them, and so on (Hinton, Osindero & Teh 2006;
Lee et al. 2009, section 3.4). :func:`fit_linear` trains a linear classifier ``x W + b`` over
mini-batches in one ``lax.scan`` per epoch, by softmax cross-entropy or by the one-vs-rest squared
hinge loss of a linear L2-loss SVM (LIBLINEAR's default, the classifier family of Lee et al.'s
MNIST table).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdbn.models import cdbn as CD
from jdbn.models import conv as C

Array = jax.Array

__all__ = ["greedy", "Linear", "LOSSES", "linear_loss", "fit_linear", "predict", "error_rate"]


def greedy(key: Array, layers: Sequence[C.ConvRBM], trainers: Sequence[Any], data: Array, *,
           epochs: int, batch_size: int,
           callback: Optional[Callable[..., None]] = None) -> CD.CDBN:
  """Trains the layers bottom-up, each on the upward pass of the trained layers below.

  Args:
    key: PRNG key (split into one key per layer, then one per epoch).
    layers: initial :class:`~jdbn.models.conv.ConvRBM` layers (shapes checked by
      :func:`jdbn.models.cdbn.check_stack`).
    trainers: one :class:`jdbn.train.contrastive.Trainer` per layer.
    data: flattened images ``[n, C*H*W]`` of the bottom layer.
    epochs: passes over the data per layer.
    batch_size: mini-batch size.
    callback: optional ``(layer_index, epoch, info)``, called after every epoch.

  Returns:
    The trained :class:`~jdbn.models.cdbn.CDBN`.
  """
  CD.check_stack(layers)
  if len(trainers) != len(layers):
    raise ValueError(f"{len(layers)} layers need {len(layers)} trainers, got {len(trainers)}")
  trained = []
  x = jnp.asarray(data)
  for i, (layer, trainer, k) in enumerate(zip(layers, trainers,
                                               jax.random.split(key, len(layers)))):
    k_init, k_run = jax.random.split(k)
    state = trainer.init(k_init, layer)
    for e, ke in enumerate(jax.random.split(k_run, epochs)):
      state, info = trainer.epoch(ke, state, x, batch_size)
      if callback is not None:
        callback(i, e, info)
    trained.append(state.params)
    x = jax.jit(CD.up)(state.params, x)
  return CD.CDBN(tuple(trained))


class Linear(NamedTuple):
  """A linear classifier with scores ``x W + b``: ``W [n_features, n_classes]``, ``b
  [n_classes]``; the class is the highest score (for softmax, ``p(y | x) = softmax(x W + b)``)."""
  W: Array
  b: Array


def _softmax(scores: Array, y: Array) -> Array:
  return optax.softmax_cross_entropy_with_integer_labels(scores, y)


def _squared_hinge(scores: Array, y: Array) -> Array:
  """One-vs-rest L2-loss SVM: ``sum_c max(0, 1 - t_c s_c)^2`` with ``t_c = +1`` for the true
  class and ``-1`` for the others."""
  signs = 2.0 * jax.nn.one_hot(y, scores.shape[-1], dtype=scores.dtype) - 1.0
  return jnp.sum(optax.losses.hinge_loss(scores, signs) ** 2, axis=-1)


#: The losses of :func:`fit_linear`, per example: ``(scores [n, c], labels [n]) -> [n]``.
LOSSES = {"softmax": _softmax, "squared_hinge": _squared_hinge}


def linear_loss(params: Linear, x: Array, y: Array, loss: str = "softmax") -> Array:
  """The mean of ``LOSSES[loss]`` over the rows of ``x [n, d]`` with integer labels ``y [n]``."""
  return jnp.mean(LOSSES[loss](x @ params.W + params.b, y))


def fit_linear(key: Array, x: Array, y: Array, n_classes: int,
               optimizer: optax.GradientTransformation, *, epochs: int,
               batch_size: int, loss: str = "softmax") -> Linear:
  """Trains :class:`Linear` on features ``x [n, d]`` and integer labels ``y [n]`` by mini-batch
  ``loss`` (a key of :data:`LOSSES`; shuffled by ``key`` each epoch; a remainder that does not
  fill a batch is skipped); each epoch is one ``lax.scan`` inside one ``jit``. Regularise through
  ``optimizer`` (e.g. ``optax.add_decayed_weights``)."""
  if loss not in LOSSES:
    raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
  x, y = jnp.asarray(x), jnp.asarray(y, jnp.int32)
  if x.ndim != 2 or y.shape != x.shape[:1]:
    raise ValueError(f"x must be [n, d] and y [n], got {tuple(x.shape)} and {tuple(y.shape)}")
  if not 0 < batch_size <= x.shape[0]:
    raise ValueError(f"batch_size must be in [1, {x.shape[0]}], got {batch_size}")
  params = Linear(jnp.zeros((x.shape[1], n_classes), x.dtype), jnp.zeros(n_classes, x.dtype))
  opt_state = optimizer.init(params)
  n_batches = x.shape[0] // batch_size

  @jax.jit
  def epoch(carry, k):
    order = jax.random.permutation(k, x.shape[0])[:n_batches * batch_size]
    idx = order.reshape(n_batches, batch_size)

    def step(carry, i):
      params, opt_state = carry
      grads = jax.grad(lambda p: linear_loss(p, x[i], y[i], loss))(params)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None

    return jax.lax.scan(step, carry, idx)[0]

  carry = (params, opt_state)
  for k in jax.random.split(key, epochs):
    carry = epoch(carry, k)
  return carry[0]


def predict(params: Linear, x: Array) -> Array:
  """The most probable class of each row of ``x``: ``[n, d] -> [n]``."""
  return jnp.argmax(jnp.asarray(x) @ params.W + params.b, axis=-1)


def error_rate(params: Linear, x: Array, y: Array) -> float:
  """The fraction of rows of ``x`` misclassified."""
  return float(np.mean(np.asarray(predict(params, x)) != np.asarray(y)))
