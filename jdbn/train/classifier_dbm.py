"""The discriminative network of a DBM (Salakhutdinov & Hinton 2009, section 5).

A DBM's hidden layers get input from above as well as below, so a feed-forward copy of its
weights alone would lose the top-down half. The paper's answer: run mean-field once for every
input, and feed the network the data *and* the approximate posterior of the second hidden layer,
``[v, q(h2 | v)]``. The first hidden layer then computes ``sigmoid(v W_0 + q_2 W_1^T + a_1)``, the
DBM's own mean-field update for ``h1``; the layers above compute ``sigmoid(h_{l-1} W_{l-1} +
a_l)`` (the bottom-up part of theirs); a softmax output layer with a small random kernel sits on
top. The result is the same :class:`jdbn.train.classifier.Classifier` (a ``flax.linen`` sigmoid
MLP) that :func:`jdbn.train.finetune.train` trains, with ``[v, q_2]`` as its input::

    module, variables = classifier_dbm.from_dbm(dbm, key=key)
    x_train = classifier_dbm.features(dbm, train_x)          # [n, 784 + n_h2], computed once
    state, history = finetune.train(key, module, variables, (x_train, y_train), ...)
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jdbn import units as U
from jdbn.models import dbm as D
from jdbn.train.classifier import Classifier

Array = jax.Array


def _check_hidden(model: D.DBM) -> int:
  """The number of hidden layers below a label block (if any); at least two, else ValueError."""
  labels = D.has_label_block(model)
  n_hidden = len(model.sizes) - 1 - int(labels)
  if n_hidden < 2:
    raise ValueError(f"a DBM with one hidden layer is an RBM: use jdbn.train.classifier; got "
                     f"sizes {model.sizes}{' with a label block' if labels else ''}")
  return n_hidden


def features(model: D.DBM, x: Array, *, tol: float = 1e-6, max_iter: int = 100,
             batch_size: int = 1000) -> Array:
  """``[x, q(h2 | x)]``: the data with the mean-field posterior of the second hidden layer,
  ``[n, n_visible] -> [n, n_visible + n_h2]``, in batches of ``batch_size``. A label block runs
  free in the mean-field (the class is what the network is to find)."""
  _check_hidden(model)
  x = jnp.asarray(x, model.biases[0].dtype)
  run = jax.jit(lambda m, v: D.mean_field(m, v, tol=tol, max_iter=max_iter).states[2])
  parts = [run(model, x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]
  return jnp.concatenate([x, jnp.concatenate(parts)], axis=-1)


def from_dbm(model: D.DBM, *, key: Array, n_classes: int = 10, dropout_rate: float = 0.0,
             input_dropout_rate: float = 0.0) -> tuple[Classifier, dict]:
  """The network of a DBM (see the module docstring); its input is :func:`features`.

  Args:
    model: a DBM with Bernoulli hidden layers (at least two) and no learned visible sigma; a
      label block on top is left out (the network's own softmax layer replaces it).
    key: PRNG key for the output layer (``N(0, 0.01^2)`` kernel, zero bias).
    n_classes, dropout_rate, input_dropout_rate: see :class:`~jdbn.train.classifier.Classifier`.

  Returns:
    ``(module, variables)``; before training, its first hidden layer on ``features(model, v)``
    is one mean-field update of ``h1`` given ``v`` and ``q_2``.
  """
  n_hidden = _check_hidden(model)
  for l, u in enumerate(model.units[1:n_hidden + 1], start=1):
    if not isinstance(u, U.Bernoulli):
      raise ValueError(f"layer h{l} has {type(u).__name__} units; the network's layers are "
                       f"sigmoid, so every hidden layer must be Bernoulli")
  if model.log_sigmas[0] is not None:
    raise ValueError("the visible layer has a learned sigma, which a Dense layer cannot copy")
  w = model.weights
  params = {"hidden_0": {"kernel": jnp.concatenate([w[0], w[1].T], axis=0),
                         "bias": model.biases[1]}}
  for l in range(1, n_hidden):
    params[f"hidden_{l}"] = {"kernel": w[l], "bias": model.biases[l + 1]}
  top = model.sizes[n_hidden]
  params["output"] = {"kernel": 0.01 * jax.random.normal(key, (top, n_classes), w[0].dtype),
                      "bias": jnp.zeros((n_classes,), w[0].dtype)}
  module = Classifier(tuple(model.sizes[1:n_hidden + 1]), n_classes, dropout_rate, input_dropout_rate)
  return module, {"params": params}


def check_features(model: D.DBM, x: Array, name: str = "x") -> Optional[str]:
  """``None`` if ``x`` has the width of :func:`features`, else what is wrong (for messages)."""
  want = model.sizes[0] + model.sizes[2]
  if jnp.shape(x)[-1] != want:
    return f"{name} has {jnp.shape(x)[-1]} columns; the DBM network takes [v, q_2], {want} wide"
  return None
