"""Deep Belief Networks: stacks of RBMs, greedy pretraining, up-down fine-tuning, generation.

A DBN here is nothing exotic: a tuple of :class:`jdbn.rbm.RBM` params ``(rbm_1, ..., rbm_L)``
where the hidden layer of ``rbm_l`` is the visible layer of ``rbm_{l+1}``. The top RBM is an
undirected associative memory; the layers below it are directed generative connections
``p(h_{l-1} | h_l)`` that, after greedy training, share their weights with the recognition
connections ``q(h_l | h_{l-1})`` (Hinton, Osindero & Teh 2006, "A fast learning algorithm for deep
belief nets", Neural Computation 18). With labels, the top RBM's visible layer is the
penultimate representation joined by one-hot label units,
``Joint(((Bernoulli(), n_penultimate), (Softmax(10), 10)))``: the 784-500-500-2000+10 network of
that paper. ::

    dbn, history = pretrain(key, [784, 500, 500, 2000], x, cd(optax.sgd(0.05, momentum=0.9)),
                            epochs=30, batch_size=100, labels=y)
    y_hat = classify(dbn, x_test)                       # argmin_label F_top(penultimate, label)
    trainer = updown(optax.sgd(1e-3), k=3)              # contrastive wake-sleep, untied weights
    state = trainer.init(key, dbn)
    state, info = trainer.epoch(key, state, (x, y), batch_size=100)
    images = generate(key, state.params, labels=jnp.arange(10).repeat(10), n_steps=1000)

Up-down fine-tuning unties recognition and generative weights (:class:`UntiedDBN`); every
function that reads a DBN accepts either a tuple of RBMs or an :class:`UntiedDBN` (recognition
weights for up passes, generative weights for down passes).
"""

from __future__ import annotations

import functools
import os
from typing import Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jdbn.train import contrastive
from jdbn import data as jdata
from jdbn import gibbs
from jdbn.train import loop
from jdbn.models import rbm as R
from jdbn.train import rbm as T
from jdbn import units as U

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


# --------------------------------------------------------------------------- pretraining


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


def pretrain(key: Array,
             layers: Sequence[Union[int, R.RBM]],
             data: ArrayLike,
             trainers: Union[contrastive.Trainer, Sequence[contrastive.Trainer]],
             *,
             epochs: Union[int, Sequence[int]],
             batch_size: Union[int, Sequence[int]],
             labels: Optional[ArrayLike] = None,
             n_classes: int = 10,
             propagate: str = "mean",
             visible: U.Units = U.Bernoulli(),
             hidden: U.Units = U.Bernoulli(),
             init_biases_from_data: bool = True,
             validation: Optional[ArrayLike] = None,
             validation_labels: Optional[ArrayLike] = None,
             progress: bool = True,
             checkpoint_dir: Optional[str] = None,
             eval_size: int = 1000,
             callback: Optional[Callable] = None) -> tuple[tuple[R.RBM, ...], list[LayerHistory]]:
  """Greedy layer-wise pretraining of a DBN (Hinton, Osindero & Teh 2006, section 4).

  Layer ``l`` is an RBM trained (by ``trainers[l]``, CD-k or PCD from :mod:`jdbn.contrastive`,
  its updates applied by Optax) on ``x_l``, the previous layer's hidden probabilities
  ``E[h_{l-1} | x_{l-1}]`` (``propagate="mean"``) or one sample of them (``"sample"``), with
  ``x_0 = data``. With ``labels`` the top RBM's visible layer is
  ``Joint(((hidden, n_penultimate), (Softmax(n_classes), n_classes)))`` and it is trained on
  ``concat(x_pen, one_hot(labels))``, the associative memory of the 2006 paper.

  Keys: layer ``l`` uses ``k_init, k_train, k_prop = split(fold_in(key, l), 3)``; its RBM is
  ``rbm.init(k_init, ..., data=x_l)`` (when ``layers[l]`` is a size) and it is trained by
  ``jdbn.train.fit(k_train, trainers[l], params, x_l, epochs=..., batch_size=...)``, exactly as a
  plain RBM, so the first layer equals a plain RBM trained that way; ``k_prop`` draws the samples
  for ``propagate="sample"``. Adding layers does not change the layers below.

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
  data = jnp.asarray(data)
  if data.ndim != 2:
    raise ValueError(f"data must be [n, n_visible], got shape {tuple(data.shape)}")
  if propagate not in ("mean", "sample"):
    raise ValueError(f"propagate must be 'mean' or 'sample', got {propagate!r}")
  layers = list(layers)
  from_sizes = all(isinstance(s, (int, np.integer)) for s in layers)
  if from_sizes:
    if len(layers) < 2:
      raise ValueError(f"layer sizes need at least [n_visible, n_hidden], got {layers}")
    if layers[0] != data.shape[1]:
      raise ValueError(f"data has {data.shape[1]} columns but layers[0] = {layers[0]}")
    n_layers = len(layers) - 1
  else:
    if not layers or not all(isinstance(p, R.RBM) for p in layers):
      raise TypeError("layers must be a list of sizes or a list of jdbn.rbm.RBM params")
    n_layers = len(layers)
    check(tuple(layers))
    if bool(n_labels(layers[-1])) != (labels is not None):
      raise ValueError("give labels exactly when the top RBM has label units")
  trainers = _per_layer(trainers, n_layers, "trainers")
  epochs = _per_layer(epochs, n_layers, "epochs")
  batch_sizes = _per_layer(batch_size, n_layers, "batch_size")
  if labels is not None:
    labels = jnp.asarray(labels)
    if labels.shape != (data.shape[0],):
      raise ValueError(f"labels must be [{data.shape[0]}], got {tuple(labels.shape)}")
    if validation is not None and validation_labels is None:
      raise ValueError("validation needs validation_labels when labels are given")

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
    if from_sizes:
      vis = visible if l == 0 else hidden
      n_vis = layers[l]
      if is_top and labels is not None:
        vis = U.Joint(((vis, n_vis), (U.Softmax(n_classes), n_classes)))
        n_vis += n_classes
      params = R.init(k_init, n_vis, layers[l + 1], vis, hidden,
                      data=np.asarray(x_in) if init_biases_from_data else None)
    else:
      params = layers[l]
    desc = f"layer {l + 1}/{n_layers} ({params.n_visible}-{params.n_hidden})"
    ckpt = None if checkpoint_dir is None else os.path.join(checkpoint_dir, f"layer_{l}")
    state, rows = T.fit(k_train, trainers[l], params, x_in, epochs=epochs[l],
                        batch_size=batch_sizes[l], validation=x_val_in,
                        progress=desc if progress else False, checkpoint_dir=ckpt,
                        eval_size=eval_size, callback=callback,
                        metadata={"layer": l, "n_layers": n_layers})
    params = state.params
    dbn.append(params)
    history.append(LayerHistory(l, (params.n_visible, params.n_hidden), rows))
    if not is_top:
      k_data, k_val = jax.random.split(k_prop)
      x = _propagate(k_data, params, x, propagate)
      if x_val is not None:
        x_val = _propagate(k_val, params, x_val, propagate)
  return tuple(dbn), history


def _top_visible_concat(x: Array, labels: Array, n_classes: int) -> Array:
  return jnp.concatenate([x, jax.nn.one_hot(labels, n_classes, dtype=x.dtype)], axis=-1)


# --------------------------------------------------------------------------- up-down


def _nll(units: U.Units, x: Array, phi: Array, bias: Array,
         log_sigma: Optional[Array]) -> Array:
  """``-log p(x | phi)`` for a layer of one family: ``[..., n] -> [...]``.

  ``p(x | phi) = exp(-E_x(x) + s_x(x) . phi - A(phi))`` with ``A`` the family's log-partition,
  so this is ``E_x(x) - s_x(x) . phi + A(phi)``: the cross-entropy ``-x log p - (1-x) log(1-p)``
  for Bernoulli units, whose gradient with respect to ``phi`` is ``E[x | phi] - x`` (the delta
  rule).
  """
  return (units.energy(x, bias, log_sigma) - jnp.sum(units.scaled(x, log_sigma) * phi, axis=-1) +
          units.log_partition(phi, bias, log_sigma))


def generative_nll(params: R.RBM, lower: Array, upper: Array) -> Array:
  """``-log p(lower | upper)`` under a layer's generative (top-down) connections: ``-> [...]``."""
  return _nll(params.visible, lower, R.visible_field(params, upper), params.b,
              params.log_sigma_v)


def recognition_nll(params: R.RBM, upper: Array, lower: Array) -> Array:
  """``-log q(upper | lower)`` under a layer's recognition (bottom-up) connections: ``-> [...]``."""
  return _nll(params.hidden, upper, R.hidden_field(params, lower), params.c, params.log_sigma_h)


class UpDownInfo(NamedTuple):
  """Diagnostics of one up-down update (or epoch means).

  Attributes:
    loss: the top RBM's CD surrogate ``mean F(pos) - mean F(neg)``.
    recon_error: the top RBM's one-step mean reconstruction error on its wake-phase input.
    grad_norm: global norm of the whole gradient.
    gen_nll: wake phase, ``sum_l mean -log p(x_{l-1} | x_l)``: how well the generative weights
      reconstruct each layer from the sampled layer above (the bottom term is the data's
      cross-entropy).
    rec_nll: sleep phase, ``sum_l mean -log q(y_l | y_{l-1})`` on the fantasies.
  """
  loss: Array
  recon_error: Array
  grad_norm: Array
  gen_nll: Array
  rec_nll: Array


def _split_batch(batch) -> tuple[Array, Optional[Array]]:
  if isinstance(batch, (tuple, list)):
    if len(batch) != 2:
      raise ValueError("a labelled batch is a pair (x, labels)")
    return jnp.asarray(batch[0]), jnp.asarray(batch[1])
  return jnp.asarray(batch), None


def updown(optimizer: optax.GradientTransformation,
           k: int = 1,
           *,
           mean_labels: bool = False) -> contrastive.Trainer:
  """Up-down fine-tuning: contrastive wake-sleep (Hinton, Osindero & Teh 2006, appendix B).

  Per mini-batch, with ``x_0`` the data and ``m`` lower layers:

  * **wake (up) pass with samples** through the recognition weights:
    ``x_l ~ q(h_l | x_{l-1})``, ``l = 1..m``;
  * **top RBM**: CD-k on ``pos = concat(x_m, one_hot(labels))`` — exactly the step of
    ``contrastive.cd(optimizer, k)``: a sweep from ``pos``, ``k - 1`` more, gradient of
    ``mean F(pos) - mean F(sg(neg))``;
  * **sleep (down) pass** from the top chain's negative state through the generative weights:
    ``y_m = neg[:n_pen]``, ``y_{l-1} ~ p(h_{l-1} | y_l)`` with the mean at the bottom;
  * generative weights follow the gradient of ``sum_l -log p(sg(x_{l-1}) | sg(x_l))`` (the delta
    rule ``Δ W_gen ∝ x_l (x_{l-1} - p_{l-1})``), recognition weights that of
    ``sum_l -log q(sg(y_l) | sg(y_{l-1}))`` (``Δ W_rec ∝ y_{l-1} (y_l - q_l)``).

  All three are gradients of local losses of disjoint parameters, so one gradient of an
  :class:`UntiedDBN` pytree goes through ``optimizer`` (any Optax transformation). The appendix
  uses sampled top hidden states in the top RBM's statistics; the free-energy gradient here uses
  their expectations (same mean, less variance), as :mod:`jdbn.contrastive` does.

  Keys: ``k_wake, k_top, k_sleep = split(key, 3)``; the top RBM's step is that of
  ``contrastive.cd(optimizer, k).update(k_top, ...)``, so for a one-layer DBN (no lower layers)
  an up-down update *is* a CD-k update of the top RBM with key ``split(key, 3)[1]``.

  Args:
    optimizer: Optax transformation applied to the whole :class:`UntiedDBN` gradient (the 2006
      paper uses plain SGD with a small learning rate).
    k: Gibbs sweeps in the top RBM per update (the paper uses 3, then 6, then 10).
    mean_labels: the top chain's label units take their softmax probabilities instead of a
      one-hot sample at every sweep, as in the paper's appendix B (``neglabprobs``); the
      penultimate units are still sampled. The top RBM's step is then that of
      ``contrastive.cd(optimizer, k, mean_visible=<the label units>)``.

  Returns:
    A :class:`jdbn.contrastive.Trainer` whose state is a ``contrastive.TrainState`` holding an
    :class:`UntiedDBN` (``init`` accepts a tied DBN and unties it); ``update`` and ``epoch`` take
    ``x`` or ``(x, labels)`` batches and report :class:`UpDownInfo`.
  """
  if not isinstance(k, int) or k < 1:
    raise ValueError(f"k (Gibbs sweeps per update) must be a positive int, got {k!r}")
  if not isinstance(optimizer, optax.GradientTransformation):
    raise TypeError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer)}")
  if not isinstance(mean_labels, bool):
    raise TypeError(f"mean_labels must be a bool, got {mean_labels!r}")

  def init(key: Optional[Array], model: DBN) -> contrastive.TrainState:
    del key  # nothing random: CD chains start from the data
    model = untie(model)
    return contrastive.TrainState(model, optimizer.init(model), None, jnp.zeros((), jnp.int32))

  def update(key: Array, state: contrastive.TrainState,
             batch) -> tuple[contrastive.TrainState, UpDownInfo]:
    model: UntiedDBN = state.params
    rec, gen, top = tuple(model.recognition), tuple(model.generative), model.top
    m = len(rec)
    x, y = _split_batch(batch)
    n_lab = n_labels(top)
    if bool(n_lab) != (y is not None):
      raise ValueError("batches must be (x, labels) exactly when the top RBM has label units")
    x = x.astype(top.W.dtype)
    k_wake, k_top, k_sleep = jax.random.split(key, 3)

    # Wake: an up pass with samples.
    xs = [x]
    for l, kl in zip(range(m), jax.random.split(k_wake, m) if m else []):
      xs.append(R.sample_hidden(kl, rec[l], xs[-1]))
    pos = _top_visible(top, xs[-1], y)

    # Top RBM: the gradient of contrastive.cd(optimizer, k), the same phases and keys.
    if mean_labels and not n_lab:
      raise ValueError("mean_labels needs a top RBM with label units")
    mask = (np.arange(top.n_visible) >= top.n_visible - n_lab) if mean_labels else None
    phases = contrastive.Phases(contrastive.sweep_from_data(mask), contrastive.from_data(k, mask),
                                contrastive.free_energy_score)
    top_loss, g_top, _, positive, negatives = contrastive.gradient(k_top, phases, top, None, pos)
    recon = R.visible_mean(top, positive.states[1])

    # Sleep: a down pass from the top chain's state, samples above the bottom, mean at it.
    n_pen = top.n_visible - n_lab
    ys = [None] * (m + 1)
    ys[m] = negatives[0][..., :n_pen]
    for l, kl in zip(reversed(range(m)), jax.random.split(k_sleep, m) if m else []):
      ys[l] = (R.sample_visible(kl, gen[l], ys[l + 1]) if l > 0 else
               R.visible_mean(gen[l], ys[l + 1]))
    xs = [jax.lax.stop_gradient(a) for a in xs]
    ys = [jax.lax.stop_gradient(a) for a in ys]

    if m:

      def local(rec_p, gen_p):
        g = sum(jnp.mean(generative_nll(gen_p[l], xs[l], xs[l + 1])) for l in range(m))
        r = sum(jnp.mean(recognition_nll(rec_p[l], ys[l + 1], ys[l])) for l in range(m))
        return g + r, (g, r)

      (_, (gen_nll, rec_nll)), (g_rec, g_gen) = jax.value_and_grad(
          local, argnums=(0, 1), has_aux=True)(rec, gen)
    else:
      gen_nll = rec_nll = jnp.zeros((), top.W.dtype)
      g_rec, g_gen = (), ()
    grads = UntiedDBN(tuple(g_rec), tuple(g_gen), g_top)
    updates, opt_state = optimizer.update(grads, state.opt_state, model)
    model = optax.apply_updates(model, updates)
    info = UpDownInfo(top_loss, jnp.mean(jnp.square(pos - recon)), optax.tree.norm(grads),
                      gen_nll, rec_nll)
    return contrastive.TrainState(model, opt_state, None, state.step + 1), info

  def epoch(key: Array, state: contrastive.TrainState, data, batch_size: int, *,
            order: Union[None, str, ArrayLike] = None
            ) -> tuple[contrastive.TrainState, UpDownInfo]:
    """One pass of :func:`update` over mini-batches of ``data`` (``x`` or ``(x, labels)``).

    ``key`` splits into ``key_order, key_steps``: by default the batches are a random permutation
    drawn with ``key_order`` cut into ``n // batch_size`` batches (the remainder dropped);
    ``order``, a ``[n_batches, batch_size]`` integer array of example indices, fixes them instead
    (e.g. from :func:`jdbn.data.balanced_order`), and ``"balanced"`` draws class-balanced ones,
    ``balanced_order(key_order, labels, batch_size, n_labels)``. Update ``i`` takes
    ``split(key_steps, n_batches)[i]`` in every case.
    """
    x, y = _split_batch(data)
    n_vis = layer_sizes(state.params)[0]
    if x.ndim != 2 or x.shape[1] != n_vis:
      raise ValueError(f"data must have shape [n, {n_vis}], got {tuple(x.shape)}")
    if y is not None and y.shape[:1] != x.shape[:1]:
      raise ValueError(f"labels have shape {tuple(y.shape)} for {x.shape[0]} examples")
    if y is not None and y.ndim == 1:
      _check_label_values(y, n_labels(state.params.top))
    if not isinstance(batch_size, int) or not 0 < batch_size <= x.shape[0]:
      raise ValueError(f"batch_size must be an int in [1, {x.shape[0]}], got {batch_size!r}")
    key_order, _ = jax.random.split(key)  # as loop.run_epoch splits it
    n = x.shape[0]
    if isinstance(order, str):
      if order != "balanced":
        raise ValueError(f"order must be None, 'balanced' or an index array, got {order!r}")
      if y is None:
        raise ValueError("order='balanced' needs labelled batches (x, labels)")
      order = jdata.balanced_order(key_order, y, batch_size, n_labels(state.params.top))
    elif order is not None:
      order = jnp.asarray(order)
      if (order.ndim != 2 or order.shape[0] < 1 or order.shape[1] != batch_size
          or not jnp.issubdtype(order.dtype, jnp.integer)):
        raise ValueError(f"order must be an integer array [n_batches, {batch_size}], got "
                         f"{order.dtype} of shape {tuple(order.shape)}")
      if int(order.min()) < 0 or int(order.max()) >= n:
        raise ValueError(f"order indexes examples outside [0, {n})")
    x = x.astype(state.params.top.W.dtype)
    return loop.run_epoch(update, key, state, x if y is None else (x, y), batch_size, order)

  return contrastive.Trainer(init, update, epoch)


def sweep_schedule(spec: Union[int, str]) -> Callable[[int], int]:
  """Gibbs sweeps in the top RBM for each up-down epoch, as a function of the 0-based epoch.

  Hinton, Osindero & Teh (2006) run CD-3 in the top RBM for the first 100 up-down epochs, CD-6
  for the next 100 and CD-10 for the last 100: ``sweep_schedule("3:100,6:200,10")``. ::

      k_of = sweep_schedule("3:100,6:200,10")
      trainers = {}
      for e in range(300):
        trainer = trainers.setdefault(k_of(e), updown(optimizer, k=k_of(e)))
        state, info = trainer.epoch(jax.random.fold_in(key, e), state, (x, y), 100)

  (the optimizer state carries over between trainers: only ``k`` differs).

  Args:
    spec: an int ``k`` (every epoch), or ``"k1:e1,k2:e2,...,kn"``: ``k1`` sweeps in epochs
      ``[0, e1)``, ``k2`` in ``[e1, e2)``, ..., ``kn`` from the last boundary on.

  Raises:
    ValueError: a sweep count that is not a positive int, boundaries that are not positive and
      increasing, or a last part with a boundary (what comes after it would be unspecified).
  """
  if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
    parts = [(int(spec), None)]
  elif isinstance(spec, str):
    parts = []
    for part in spec.replace(" ", "").split(","):
      k, sep, until = part.partition(":")
      try:
        parts.append((int(k), int(until) if sep else None))
      except ValueError:
        raise ValueError(f"sweep schedule {spec!r}: {part!r} is not 'k:epoch' or 'k' with "
                         f"integers") from None
  else:
    raise TypeError(f"a sweep schedule is an int or a string like '3:100,6:200,10', got "
                    f"{type(spec).__name__}")
  ks = [k for k, _ in parts]
  bounds = [e for _, e in parts[:-1]]
  if any(k < 1 for k in ks):
    raise ValueError(f"sweep schedule {spec!r}: sweep counts must be positive")
  if parts[-1][1] is not None:
    raise ValueError(f"sweep schedule {spec!r}: the last part is a plain k (the sweeps after "
                     f"the last boundary), e.g. '3:100,6:200,10'")
  if any(e is None for e in bounds) or any(e < 1 for e in bounds) or bounds != sorted(
      set(bounds)):
    raise ValueError(f"sweep schedule {spec!r}: every part but the last needs an epoch "
                     f"boundary, and the boundaries must be positive and increasing")

  def k_of(epoch: int) -> int:
    for k, until in zip(ks, bounds):
      if epoch < until:
        return k
    return ks[-1]

  return k_of


# --------------------------------------------------------------------------- generation


def generate(key: Array,
             model: DBN,
             labels: Optional[ArrayLike] = None,
             n_steps: int = 1000,
             *,
             n_samples: Optional[int] = None) -> Array:
  """Samples from a DBN: Gibbs chains in the top RBM, then one mean-field down pass.

  Every chain starts from ``p(v_top | h = 0)`` (labels clamped, if given) and runs ``n_steps``
  block-Gibbs sweeps (:func:`jdbn.gibbs.chain`, the label units held by a ``clamp`` mask for
  class-conditional samples, as in Hinton, Osindero & Teh 2006, section 7). The penultimate
  layer's mean given the last hidden sample, ``E[x_pen | h_top]``, is then passed down through
  the generative weights (:func:`down_pass`).

  Args:
    key: PRNG key; the same key gives the same samples.
    model: a DBN (tied, or untied after :func:`updown`).
    labels: ``[n]`` int labels to clamp (needs label units). Without it the top RBM's label
      units (if any) run freely and ``n_samples`` chains are drawn.
    n_steps: Gibbs sweeps in the top RBM (static).
    n_samples: number of chains when ``labels`` is ``None``.

  Returns:
    ``[n, n_visible]`` data-space means (pixel probabilities for Bernoulli visible units).
    Jitted (``n_steps`` and ``n_samples`` static): repeated calls with the same shapes reuse
    the compiled chain. Labels outside ``[0, n_labels)`` raise ValueError (when their values
    are known, i.e. not under the caller's own ``jit``).
  """
  if labels is not None:
    _check_label_values(labels, n_labels(_parts(model)[2]))
  return _generate(key, model, labels, n_steps, n_samples=n_samples)


@functools.partial(jax.jit, static_argnames=("n_steps", "n_samples"))
def _generate(key, model, labels, n_steps, *, n_samples):
  _, _, top = _parts(model)
  n_lab = n_labels(top)
  n_pen = top.n_visible - n_lab
  k_init, k_run = jax.random.split(key)
  clamp = None
  if labels is not None:
    if not n_lab:
      raise ValueError("labels given but the top RBM has no label units")
    labels = jnp.asarray(labels)
    if labels.ndim != 1:
      raise ValueError(f"labels must be [n] ints, got shape {tuple(labels.shape)}")
    start = gibbs.init_random(k_init, top, labels.shape[0])
    v0 = _top_visible(top, start.v[:, :n_pen], labels)
    clamp = jnp.arange(top.n_visible) >= n_pen
  else:
    if not isinstance(n_samples, int) or n_samples < 1:
      raise ValueError(f"without labels, n_samples must be a positive int, got {n_samples!r}")
    v0 = gibbs.init_random(k_init, top, n_samples).v
  state, _ = gibbs.chain(k_run, top, gibbs.init(top, v0), n_steps, clamp=clamp)
  pen = R.visible_mean(top, state.h)[..., :n_pen]
  return down_pass(model, pen)


# --------------------------------------------------------------------------- likelihood bound


def log_likelihood_bound(key: Array,
                         model: DBN,
                         v: ArrayLike,
                         log_z: ArrayLike,
                         *,
                         n_samples: int = 10,
                         labels: Optional[ArrayLike] = None) -> Array:
  """Variational lower bound on ``log p(v)`` of a DBN (Salakhutdinov & Murray 2008, section 5).

  With the approximate posterior ``Q(h_1..h_m | v) = prod_l q(h_l | h_{l-1})`` given by the
  recognition (bottom-up) conditionals and the generative model
  ``p(v, h_1..h_m) = prod_l p(h_{l-1} | h_l) p_top(h_m)``,

      log p(v) >= E_Q[ log p(v, h_1..h_m) - log Q(h_1..h_m | v) ]
                = E_Q[ sum_l (log p(h_{l-1} | h_l) - log q(h_l | h_{l-1})) - F_top(h_m) ] - log Z

  (``-F_top`` marginalises the label units when the top RBM has them: ``logsumexp_k
  -F(h_m, e_k)``; with ``labels`` it is the bound on ``log p(v, label)`` instead). For the 2-layer
  DBN of the paper this is its equation (17); more layers chain the same way. The expectation is
  a Monte Carlo average over ``n_samples`` draws from ``Q``; for Bernoulli/Softmax recognition
  units ``E_q[-log q]`` given the layer below is replaced by the exact conditional entropy (a
  Rao-Blackwellisation). ``log_z`` is the top RBM's log partition function, exact
  (:func:`jdbn.likelihood.exact_log_z`) or estimated by AIS (``jdbn.likelihood.ais``); with an AIS
  estimate the result is a stochastic bound (Salakhutdinov & Murray report it the same way).

  Args:
    key: PRNG key.
    model: a DBN (tied or untied).
    v: ``[batch, n_visible]`` data.
    log_z: scalar log partition function of the top RBM (over all of its visible units, labels
      included).
    n_samples: draws from ``Q`` per example.
    labels: optional ``[batch]`` labels (top RBM with label units).

  Returns:
    ``[batch]`` lower bounds in nats (exactly ``log p(v)`` for a one-layer DBN).
  """
  rec, gen, top = _parts(model)
  m = len(rec)
  v = jnp.asarray(v, top.W.dtype)
  n_lab = n_labels(top)
  if labels is not None and not n_lab:
    raise ValueError("labels given but the top RBM has no label units")

  def one(k):
    x, total = v, jnp.zeros(v.shape[:-1], v.dtype)
    for l, kl in zip(range(m), jax.random.split(k, m) if m else []):
      p = rec[l]
      phi = R.hidden_field(p, x)
      h = p.hidden.sample(kl, phi, p.c, p.log_sigma_h)
      mean = p.hidden.mean(phi, p.c, p.log_sigma_h)
      neg_log_q = _nll(p.hidden, mean if p.hidden.linear_energy else h, phi, p.c,
                       p.log_sigma_h)
      total = total - generative_nll(gen[l], x, h) + neg_log_q
      x = h
    if n_lab and labels is None:
      top_term = jax.nn.logsumexp(-label_free_energies(top, x), axis=-1)
    else:
      top_term = -R.free_energy(top, _top_visible(top, x, labels))
    return total + top_term

  if not isinstance(n_samples, int) or n_samples < 1:
    raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
  return jnp.mean(jax.vmap(one)(jax.random.split(key, n_samples)), axis=0) - log_z
