"""The discriminative network of a DBN: a Flax sigmoid MLP with its weights from the DBN's.

The pretrained stack becomes a feed-forward network of sigmoid layers, layer ``l`` computing
``sigmoid(x W_l + c_l)`` with each RBM's weights ``W_l`` and hidden biases ``c_l`` (its mean-field
recognition pass), followed by a softmax output layer (:func:`from_dbn`); :mod:`jdbn.finetune`
trains it by back-propagating the cross-entropy and re-exports everything here.

Output layer. When the DBN's top RBM has label units
(``Joint(((Bernoulli(), n_pen), (Softmax(10), 10)))``) the output layer starts from them:
``kernel = W_top[n_pen:].T``, ``bias = b_top[n_pen:]``, so the initial network outputs
``softmax(b_label + W_label h_top)``, the top RBM's own conditional ``p(label | h_top)`` given the
top hidden layer's mean (its hidden layer computes ``sigmoid(c + x_pen W_top[:n_pen])``, the label
units off since the label is unknown). Otherwise (or with ``output_init="random"``) its kernel
is drawn from ``N(0, 0.01^2)`` and its bias is zero, the small random initialisation of
Hinton & Salakhutdinov. The ablation, :func:`init_random`, is the same network with Flax's
default initialisation (LeCun-normal kernels, zero biases), trained identically.

The network is a ``flax.linen`` module: Flax's documentation keeps Linen supported alongside NNX,
and its functional ``apply(variables, x)`` over a plain pytree of params suits ``lax.scan``,
``jit`` and Optax here without any state to thread.
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdbn import units as U
from jdbn.models import dbn as D

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


class Classifier(nn.Module):
  """A sigmoid multilayer perceptron with a softmax output: the discriminative DBN.

  Attributes:
    hidden_sizes: units of each hidden layer, e.g. ``(500, 500, 2000)``.
    n_classes: output classes.
    dropout_rate: dropout probability after every hidden layer (0 for none; Srivastava et al.
      2014 use 0.5).
    input_dropout_rate: dropout probability on the inputs (Srivastava et al. use 0.2).

  ``__call__(x, *, train=False, return_hidden=False)`` maps ``x: [..., n_in]`` to logits
  ``[..., n_classes]`` (and, with ``return_hidden``, the list of hidden activations
  ``[..., n_l]``, before dropout). With ``train=True`` dropout needs an ``rngs={"dropout": key}``.
  Layers are named ``hidden_0, hidden_1, ...`` and ``output``.
  """
  hidden_sizes: Sequence[int]
  n_classes: int = 10
  dropout_rate: float = 0.0
  input_dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x, *, train: bool = False, return_hidden: bool = False):
    h = x
    if self.input_dropout_rate:
      h = nn.Dropout(self.input_dropout_rate, deterministic=not train)(h)
    hidden = []
    for i, n in enumerate(self.hidden_sizes):
      h = nn.sigmoid(nn.Dense(n, name=f"hidden_{i}")(h))
      hidden.append(h)
      if self.dropout_rate:
        h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    logits = nn.Dense(self.n_classes, name="output")(h)
    return (logits, hidden) if return_hidden else logits


def from_dbn(dbn: D.DBN,
             *,
             key: Optional[Array] = None,
             n_classes: Optional[int] = None,
             output_init: str = "auto",
             dropout_rate: float = 0.0,
             input_dropout_rate: float = 0.0) -> tuple[Classifier, dict]:
  """The network of a pretrained DBN: hidden layers from its RBMs, a softmax output layer.

  Hidden layer ``l`` gets ``kernel = W_l`` (``[n_{l-1}, n_l]``) and ``bias = c_l`` from the DBN's
  recognition weights (the RBMs of a tied DBN, ``recognition`` of an :class:`jdbn.dbn.UntiedDBN`)
  and the top RBM (its rows for the penultimate units only), so that before training its hidden
  activations are exactly :func:`jdbn.dbn.up_pass` ``(dbn, x)`` (label units off).

  Args:
    dbn: a DBN whose hidden units are all Bernoulli (sigmoid) and whose visible units have no
      learned sigma.
    key: PRNG key for a random output layer (needed unless it comes from the label weights).
    n_classes: output classes; default the top RBM's label count, else 10.
    output_init: ``"labels"`` (from the top RBM's label weights, see the module docstring),
      ``"random"`` (``N(0, 0.01^2)`` kernel, zero bias) or ``"auto"`` (labels if the DBN has them).
    dropout_rate, input_dropout_rate: see :class:`Classifier`.

  Returns:
    ``(module, variables)`` with ``variables = {"params": {...}}``.
  """
  rec, _, top = D._parts(dbn)  # pylint: disable=protected-access
  n_lab = D.n_labels(top)
  n_pen = top.n_visible - n_lab
  for l, p in enumerate(rec + (top,)):
    if not isinstance(p.hidden, U.Bernoulli):
      raise ValueError(f"layer {l} has {type(p.hidden).__name__} hidden units; the network's "
                       "layers are sigmoid, so every hidden layer must be Bernoulli")
    if p.log_sigma_v is not None:
      raise ValueError(f"layer {l} has a learned visible sigma, which a Dense layer cannot copy")
  if output_init == "auto":
    output_init = "labels" if n_lab else "random"
  if output_init not in ("labels", "random"):
    raise ValueError(f"output_init must be 'labels', 'random' or 'auto', got {output_init!r}")
  n_classes = n_classes or n_lab or 10
  params = {}
  for l, p in enumerate(rec):
    params[f"hidden_{l}"] = {"kernel": p.W, "bias": p.c}
  params[f"hidden_{len(rec)}"] = {"kernel": top.W[:n_pen], "bias": top.c}
  if output_init == "labels":
    if not n_lab:
      raise ValueError("output_init='labels' needs a top RBM with label units")
    if n_classes != n_lab:
      raise ValueError(f"n_classes={n_classes} but the top RBM has {n_lab} label units")
    params["output"] = {"kernel": top.W[n_pen:].T, "bias": top.b[n_pen:]}
  else:
    if key is None:
      raise ValueError("a random output layer needs a key")
    params["output"] = {
        "kernel": 0.01 * jax.random.normal(key, (top.n_hidden, n_classes), top.W.dtype),
        "bias": jnp.zeros((n_classes,), top.W.dtype)
    }
  module = Classifier(tuple(D.layer_sizes(dbn)[1:]), n_classes, dropout_rate, input_dropout_rate)
  return module, {"params": jax.tree.map(jnp.asarray, params)}


def init_random(key: Array,
                sizes: Sequence[int],
                *,
                n_classes: int = 10,
                dropout_rate: float = 0.0,
                input_dropout_rate: float = 0.0) -> tuple[Classifier, dict]:
  """The same network with random weights (Flax defaults: LeCun-normal kernels, zero biases).

  Args:
    key: PRNG key.
    sizes: ``[n_in, n_1, ..., n_L]``, e.g. :func:`jdbn.dbn.layer_sizes` of the DBN it ablates.
    n_classes, dropout_rate, input_dropout_rate: see :class:`Classifier`.

  Returns:
    ``(module, variables)``.
  """
  sizes = list(sizes)
  module = Classifier(tuple(sizes[1:]), n_classes, dropout_rate, input_dropout_rate)
  variables = module.init(key, jnp.zeros((1, sizes[0]), jnp.float32))
  return module, variables


# --------------------------------------------------------------------------- evaluation


def predict_logits(module: Classifier, variables: dict, x: ArrayLike, *,
                   batch_size: Optional[int] = 1000) -> Array:
  """Logits ``[n, n_classes]`` of ``x: [n, n_in]`` (no dropout), in chunks of ``batch_size``."""
  return _predict(module, variables, jnp.asarray(x, jnp.float32), batch_size)


@functools.partial(jax.jit, static_argnames=("module", "batch_size"))
def _predict(module, variables, x, batch_size):
  f = lambda xi: module.apply(variables, xi)  # noqa: E731
  if batch_size is None or x.ndim != 2:
    return f(x)
  return jax.lax.map(f, x, batch_size=min(batch_size, x.shape[0]))


def error_rate(module: Classifier, variables: dict, x: ArrayLike, y: ArrayLike, *,
               batch_size: Optional[int] = 1000) -> float:
  """Fraction of ``x: [n, n_in]`` whose argmax logit is not ``y: [n]``."""
  pred = jnp.argmax(predict_logits(module, variables, x, batch_size=batch_size), axis=-1)
  return float(jnp.mean(pred != jnp.asarray(y)))
