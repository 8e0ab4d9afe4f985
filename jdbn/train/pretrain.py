"""Greedy layer-wise pretraining of a DBN (Hinton, Osindero & Teh 2006, section 4).

Layer ``l`` is an RBM trained (by ``trainers[l]``, CD-k or PCD from :mod:`jdbn.contrastive`, its
updates applied by Optax) on ``x_l``, the previous layer's hidden probabilities
``E[h_{l-1} | x_{l-1}]`` (``propagate="mean"``) or one sample of them (``"sample"``), with
``x_0 = data``. With ``labels`` the top RBM's visible layer is
``Joint(((hidden, n_penultimate), (Softmax(n_classes), n_classes)))`` and it is trained on
``concat(x_pen, one_hot(labels))``, the associative memory of the 2006 paper. ::

    dbn, history = pretrain(key, [784, 500, 500, 2000], x, cd(optax.sgd(0.05, momentum=0.9)),
                            epochs=30, batch_size=100, labels=y)

Keys: layer ``l`` uses ``k_init, k_train, k_prop = split(fold_in(key, l), 3)``; its RBM is
``rbm.init(k_init, ..., data=x_l)`` (when ``layers[l]`` is a size) and it is trained by
``jdbn.train.fit(k_train, trainers[l], params, x_l, epochs=..., batch_size=...)``, exactly as a
plain RBM, so the first layer equals a plain RBM trained that way; ``k_prop`` draws the samples
for ``propagate="sample"``. Adding layers does not change the layers below.

The DBN it returns is a tuple of RBMs (:mod:`jdbn.models.dbn`). Re-exported by :mod:`jdbn.dbn`.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from jdbn import units as U
from jdbn.models import rbm as R
from jdbn.models.dbn import check, n_labels
from jdbn.train import contrastive
from jdbn.train import rbm as T

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


class LayerHistory(NamedTuple):
  """Metrics of one layer's greedy training.

  Attributes:
    layer: index of the layer (0 is the bottom).
    sizes: ``(n_visible, n_hidden)`` of the layer's RBM (labels included in ``n_visible``).
    epochs: :func:`jdbn.train.fit`'s history, one dict per epoch (``epoch``, ``loss``,
      ``recon_error``, ``grad_norm``, free energies, ``seconds``; ``pseudo_likelihood`` only for
      layers whose visible units are all Bernoulli, so not for a top layer with label units).
  """
  layer: int
  sizes: tuple
  epochs: list


def _per_layer(value, n: int, name: str) -> list:
  if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):  # not a NamedTuple
    if len(value) != n:
      raise ValueError(f"{name} has {len(value)} entries for {n} layers")
    return list(value)
  return [value] * n


@functools.partial(jax.jit, static_argnames="chunk")
def _propagate_mean(params: R.RBM, x: Array, chunk: int = 4096) -> Array:
  n = x.shape[0]
  pad = (-n) % chunk
  xp = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
  out = jax.lax.map(lambda b: R.hidden_mean(params, b), xp.reshape((-1, chunk) + x.shape[1:]))
  return out.reshape((-1, out.shape[-1]))[:n]


def propagate(key: Optional[Array], params: R.RBM, x: ArrayLike, mode: str = "mean") -> Array:
  """The data for the next layer of a greedy stack: ``E[h | x]`` or one sample ``h ~ p(h | x)``.

  Args:
    key: PRNG key (used only for ``mode="sample"``).
    params: the trained layer.
    x: ``[n, n_visible]``.
    mode: ``"mean"`` (probabilities, as Hinton & Salakhutdinov 2006 train the next layer on) or
      ``"sample"`` (one binary sample per example, fixed for all of the next layer's epochs).

  Returns:
    ``[n, n_hidden]``.
  """
  x = jnp.asarray(x, params.W.dtype)
  if mode == "mean":
    return _propagate_mean(params, x, chunk=min(4096, max(1, x.shape[0])))
  if mode == "sample":
    if key is None:
      raise ValueError("propagate='sample' needs a key")
    return jax.jit(R.sample_hidden)(key, params, x)
  raise ValueError(f"propagate must be 'mean' or 'sample', got {mode!r}")


_propagate = propagate  # pretrain's argument of the same name shadows it


def pretrain(key: Array, layers: Sequence[Union[int, R.RBM]], data: ArrayLike,
             trainers: Union[contrastive.Trainer, Sequence[contrastive.Trainer]], *,
             epochs: Union[int, Sequence[int]], batch_size: Union[int, Sequence[int]],
             labels: Optional[ArrayLike] = None, n_classes: int = 10, propagate: str = "mean",
             visible: U.Units = U.Bernoulli(), hidden: U.Units = U.Bernoulli(),
             init_biases_from_data: bool = True, validation: Optional[ArrayLike] = None,
             validation_labels: Optional[ArrayLike] = None, progress: bool = True,
             checkpoint_dir: Optional[str] = None, eval_size: int = 1000,
             callback: Optional[Callable] = None) -> tuple[tuple[R.RBM, ...], list[LayerHistory]]:
  """Greedy layer-wise pretraining of a DBN: layer by layer, each on the one below's output.

  See the module docstring for the stack each layer is trained on and the keys it uses.

  Args:
    key: PRNG key.
    layers: either sizes ``[n_visible, n_1, ..., n_L]`` (``n_visible`` without labels), each
      RBM then made by :func:`jdbn.rbm.init` (visible biases from the layer's data when
      ``init_biases_from_data``), or ``L`` initial :class:`jdbn.rbm.RBM` params that chain up (the
      top one with label units if ``labels`` is given).
    data: ``[n, n_visible]`` training data (values in the visible family's support).
    trainers: a :class:`jdbn.contrastive.Trainer` for every layer, or one per layer.
    epochs: epochs per layer (an int, or one per layer).
    batch_size: mini-batch size (an int, or one per layer).
    labels: optional ``[n]`` int labels in ``[0, n_classes)`` for the top RBM.
    n_classes: number of label units.
    propagate: ``"mean"`` or ``"sample"``, see :func:`propagate`.
    visible: the bottom layer's unit family (used with sizes).
    hidden: the unit family of every hidden layer (used with sizes).
    init_biases_from_data: set visible biases from each layer's data (Hinton 2010, section 8).
    validation: optional ``[n_val, n_visible]`` data propagated alongside and passed to ``fit``.
    validation_labels: ``[n_val]`` labels for ``validation`` when ``labels`` is given.
    progress: per-layer tqdm progress bars.
    checkpoint_dir: if given, layer ``l`` checkpoints every epoch under
      ``checkpoint_dir/layer_{l}``; :func:`jdbn.train.fit` resumes a layer from there exactly, and
      a finished layer is simply reloaded, so an interrupted ``pretrain`` called again with the
      same arguments continues where it stopped.
    eval_size: examples ``fit``'s monitoring metrics use per epoch.
    callback: ``fit``'s ``callback(epoch, state, metrics)``, called after every epoch of every
      layer (a true return value ends that layer's training early).

  Returns:
    ``(dbn, history)``: the tuple of trained RBMs and one :class:`LayerHistory` per layer.
  """
  data, layers, n_layers = _check_layers(data, layers, propagate, labels)
  per_layer = {"trainers": trainers, "epochs": epochs, "batch_size": batch_size}
  per_layer = {k: _per_layer(v, n_layers, k) for k, v in per_layer.items()}
  labels = _check_labels(labels, data, validation, validation_labels)
  make = functools.partial(_new_layer, visible=visible, hidden=hidden, n_classes=n_classes,
                           init_biases_from_data=init_biases_from_data)
  fit = functools.partial(_fit_layer, n_layers=n_layers, progress=progress,
                          checkpoint_dir=checkpoint_dir, eval_size=eval_size, callback=callback)
  return _greedy_stack(key, layers, data, labels, validation, validation_labels, per_layer,
                       n_classes, propagate, make, fit)


def _check_layers(data: ArrayLike, layers: Sequence[Union[int, R.RBM]], propagate: str,
                  labels: Optional[ArrayLike]) -> tuple[Array, list, int]:
  """``(data, layers, n_layers)``, checked: sizes that fit ``data``, or RBMs that chain up."""
  data = jnp.asarray(data)
  if data.ndim != 2:
    raise ValueError(f"data must be [n, n_visible], got shape {tuple(data.shape)}")
  if propagate not in ("mean", "sample"):
    raise ValueError(f"propagate must be 'mean' or 'sample', got {propagate!r}")
  layers = list(layers)
  if all(isinstance(s, (int, np.integer)) for s in layers):
    if len(layers) < 2:
      raise ValueError(f"layer sizes need at least [n_visible, n_hidden], got {layers}")
    if layers[0] != data.shape[1]:
      raise ValueError(f"data has {data.shape[1]} columns but layers[0] = {layers[0]}")
    return data, layers, len(layers) - 1
  if not layers or not all(isinstance(p, R.RBM) for p in layers):
    raise TypeError("layers must be a list of sizes or a list of jdbn.rbm.RBM params")
  check(tuple(layers))
  if bool(n_labels(layers[-1])) != (labels is not None):
    raise ValueError("give labels exactly when the top RBM has label units")
  return data, layers, len(layers)


def _check_labels(labels: Optional[ArrayLike], data: Array, validation: Optional[ArrayLike],
                  validation_labels: Optional[ArrayLike]) -> Optional[Array]:
  """``labels`` as an array after checking its shape (and that ``validation`` has labels too)."""
  if labels is None:
    return None
  labels = jnp.asarray(labels)
  if labels.shape != (data.shape[0],):
    raise ValueError(f"labels must be [{data.shape[0]}], got {tuple(labels.shape)}")
  if validation is not None and validation_labels is None:
    raise ValueError("validation needs validation_labels when labels are given")
  return labels


def _greedy_stack(key: Array, layers: list, data: Array, labels: Optional[Array],
                  validation: Optional[ArrayLike], validation_labels: Optional[ArrayLike],
                  per_layer: dict, n_classes: int, propagate: str, make: Callable,
                  fit: Callable) -> tuple[tuple[R.RBM, ...], list[LayerHistory]]:
  """The loop of :func:`pretrain`: makes (``make``) and trains (``fit``) each layer in turn,
  then propagates the data and validation data through it for the layer above."""
  n_layers = len(per_layer["epochs"])
  from_sizes = not isinstance(layers[0], R.RBM)
  x = data
  x_val = None if validation is None else jnp.asarray(validation)
  dbn, history = [], []
  for l in range(n_layers):
    k_init, k_train, k_prop = jax.random.split(jax.random.fold_in(key, l), 3)
    is_top = l == n_layers - 1
    x_in, x_val_in = x, x_val
    if is_top and labels is not None:
      x_in = _top_visible_concat(x, labels, n_classes)
      if x_val is not None:
        x_val_in = _top_visible_concat(x_val, jnp.asarray(validation_labels), n_classes)
    params = (make(k_init, l, layers[l], layers[l + 1], x_in, is_top and labels is not None)
              if from_sizes else layers[l])
    params, rows = fit(k_train, l, per_layer["trainers"][l], params, x_in, x_val_in,
                       per_layer["epochs"][l], per_layer["batch_size"][l])
    dbn.append(params)
    history.append(LayerHistory(l, (params.n_visible, params.n_hidden), rows))
    if not is_top:
      k_data, k_val = jax.random.split(k_prop)
      x = _propagate(k_data, params, x, propagate)
      if x_val is not None:
        x_val = _propagate(k_val, params, x_val, propagate)
  return tuple(dbn), history


def _new_layer(key: Array, l: int, n_vis: int, n_hid: int, x_in: Array, labelled: bool, *,
               visible: U.Units, hidden: U.Units, n_classes: int,
               init_biases_from_data: bool) -> R.RBM:
  """Layer ``l``'s initial RBM, ``n_vis`` (+ ``n_classes`` label units if ``labelled``) by
  ``n_hid``, its visible biases from its data ``x_in`` if ``init_biases_from_data``."""
  vis = visible if l == 0 else hidden
  if labelled:
    vis = U.Joint(((vis, n_vis), (U.Softmax(n_classes), n_classes)))
    n_vis += n_classes
  return R.init(key, n_vis, n_hid, vis, hidden,
                data=np.asarray(x_in) if init_biases_from_data else None)


def _fit_layer(key: Array, l: int, trainer: contrastive.Trainer, params: R.RBM, x_in: Array,
               x_val_in: Optional[Array], epochs: int, batch_size: int, *, n_layers: int,
               progress: bool, checkpoint_dir: Optional[str], eval_size: int,
               callback: Optional[Callable]) -> tuple[R.RBM, list]:
  """Trains layer ``l`` with :func:`jdbn.train.fit`: ``(trained params, per-epoch history)``."""
  desc = f"layer {l + 1}/{n_layers} ({params.n_visible}-{params.n_hidden})"
  ckpt = None if checkpoint_dir is None else os.path.join(checkpoint_dir, f"layer_{l}")
  state, rows = T.fit(key, trainer, params, x_in, epochs=epochs, batch_size=batch_size,
                      validation=x_val_in, progress=desc if progress else False,
                      checkpoint_dir=ckpt, eval_size=eval_size, callback=callback,
                      metadata={"layer": l, "n_layers": n_layers})
  return state.params, rows


def _top_visible_concat(x: Array, labels: Array, n_classes: int) -> Array:
  return jnp.concatenate([x, jax.nn.one_hot(labels, n_classes, dtype=x.dtype)], axis=-1)
