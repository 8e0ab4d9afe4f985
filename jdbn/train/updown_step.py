"""The up-down algorithm: one update and one epoch of contrastive wake-sleep on a DBN.

:func:`updown` is Hinton, Osindero & Teh's (2006, appendix B) fine-tuning of a
:mod:`jdbn.models.dbn` stack as a :class:`jdbn.contrastive.Trainer`: its recognition and
generative weights untied (:class:`jdbn.models.dbn.UntiedDBN`), a wake pass, CD-k in the top RBM
and a sleep pass per mini-batch. ::

    trainer = updown(optax.sgd(1e-3), k=3)
    state = trainer.init(key, dbn)
    state, info = trainer.epoch(key, state, (x, y), batch_size=100)

:mod:`jdbn.train.updown` runs it to a schedule of sweeps and rates, resumably. Re-exported by
:mod:`jdbn.dbn`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdbn import data as jdata
from jdbn.models import rbm as R
from jdbn.models.dbn import (DBN, UntiedDBN, _check_label_values, _top_visible, layer_sizes,
                             n_labels, untie)
from jdbn.models.dbn_likelihood import generative_nll, recognition_nll
from jdbn.train import contrastive
from jdbn.train import loop

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


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
  init = functools.partial(_init, optimizer=optimizer)
  update = functools.partial(_update, optimizer=optimizer, k=k, mean_labels=mean_labels)
  return contrastive.Trainer(init, update, functools.partial(_epoch, update=update))


def _init(key: Optional[Array], model: DBN, *,
          optimizer: optax.GradientTransformation) -> contrastive.TrainState:
  """The trainer's ``init``: the untied ``model`` and a fresh optimizer state."""
  del key  # nothing random: CD chains start from the data
  model = untie(model)
  return contrastive.TrainState(model, optimizer.init(model), None, jnp.zeros((), jnp.int32))


def _update(key: Array, state: contrastive.TrainState, batch, *,
            optimizer: optax.GradientTransformation, k: int,
            mean_labels: bool) -> tuple[contrastive.TrainState, UpDownInfo]:
  """The trainer's ``update``: one up-down step on ``batch`` (``x`` or ``(x, labels)``)."""
  model: UntiedDBN = state.params
  rec, gen, top = tuple(model.recognition), tuple(model.generative), model.top
  x, y = _split_batch(batch)
  n_lab = n_labels(top)
  if bool(n_lab) != (y is not None):
    raise ValueError("batches must be (x, labels) exactly when the top RBM has label units")
  x = x.astype(top.W.dtype)
  k_wake, k_top, k_sleep = jax.random.split(key, 3)
  xs = _wake(k_wake, rec, x)
  pos = _top_visible(top, xs[-1], y)
  top_loss, g_top, recon, neg = _top_gradient(k_top, top, pos, k, mean_labels)
  ys = _sleep(k_sleep, gen, neg[..., :top.n_visible - n_lab])
  xs = [jax.lax.stop_gradient(a) for a in xs]
  ys = [jax.lax.stop_gradient(a) for a in ys]
  gen_nll, rec_nll, g_rec, g_gen = _layer_gradients(rec, gen, xs, ys, top.W.dtype)
  grads = UntiedDBN(tuple(g_rec), tuple(g_gen), g_top)
  updates, opt_state = optimizer.update(grads, state.opt_state, model)
  model = optax.apply_updates(model, updates)
  info = UpDownInfo(top_loss, jnp.mean(jnp.square(pos - recon)), optax.tree.norm(grads),
                    gen_nll, rec_nll)
  return contrastive.TrainState(model, opt_state, None, state.step + 1), info


def _wake(key: Array, rec: tuple, x: Array) -> list[Array]:
  """Wake: an up pass with samples, ``[x_0 = x, x_1, ..., x_m]``, ``x_l ~ q(h_l | x_{l-1})``."""
  m = len(rec)
  xs = [x]
  for l, kl in zip(range(m), jax.random.split(key, m) if m else []):
    xs.append(R.sample_hidden(kl, rec[l], xs[-1]))
  return xs


def _top_gradient(key: Array, top: R.RBM, pos: Array, k: int,
                  mean_labels: bool) -> tuple[Array, R.RBM, Array, Array]:
  """The top RBM's gradient of ``contrastive.cd(optimizer, k)``, the same phases and keys.

  Returns:
    ``(loss, gradient, reconstruction of pos [batch, n_visible], negative visible state)``.
  """
  n_lab = n_labels(top)
  if mean_labels and not n_lab:
    raise ValueError("mean_labels needs a top RBM with label units")
  mask = (np.arange(top.n_visible) >= top.n_visible - n_lab) if mean_labels else None
  phases = contrastive.Phases(contrastive.sweep_from_data(mask), contrastive.from_data(k, mask),
                              contrastive.free_energy_score)
  top_loss, g_top, _, positive, negatives = contrastive.gradient(key, phases, top, None, pos)
  return top_loss, g_top, R.visible_mean(top, positive.states[1]), negatives[0]


def _sleep(key: Array, gen: tuple, pen: Array) -> list[Array]:
  """Sleep: a down pass from the top chain's penultimate state ``pen``, samples above the
  bottom, the mean at it: ``[y_0, ..., y_m = pen]``, ``y_{l-1} ~ p(h_{l-1} | y_l)``."""
  m = len(gen)
  ys = [None] * (m + 1)
  ys[m] = pen
  for l, kl in zip(reversed(range(m)), jax.random.split(key, m) if m else []):
    ys[l] = (R.sample_visible(kl, gen[l], ys[l + 1]) if l > 0 else
             R.visible_mean(gen[l], ys[l + 1]))
  return ys


def _layer_gradients(rec: tuple, gen: tuple, xs: list, ys: list, dtype) -> tuple:
  """``(gen_nll, rec_nll, recognition gradients, generative gradients)`` of the lower layers:
  the delta rules, as gradients of ``sum_l -log p(x_{l-1} | x_l)`` and
  ``sum_l -log q(y_l | y_{l-1})`` (``xs``, ``ys`` already stopped)."""
  m = len(rec)
  if not m:
    return jnp.zeros((), dtype), jnp.zeros((), dtype), (), ()

  def local(rec_p, gen_p):
    g = sum(jnp.mean(generative_nll(gen_p[l], xs[l], xs[l + 1])) for l in range(m))
    r = sum(jnp.mean(recognition_nll(rec_p[l], ys[l + 1], ys[l])) for l in range(m))
    return g + r, (g, r)

  (_, (gen_nll, rec_nll)), (g_rec, g_gen) = jax.value_and_grad(
      local, argnums=(0, 1), has_aux=True)(rec, gen)
  return gen_nll, rec_nll, g_rec, g_gen


def _epoch(key: Array, state: contrastive.TrainState, data, batch_size: int, *,
           order: Union[None, str, ArrayLike] = None,
           update) -> tuple[contrastive.TrainState, UpDownInfo]:
  """One pass of ``update`` over mini-batches of ``data`` (``x`` or ``(x, labels)``).

  ``key`` splits into ``key_order, key_steps``: by default the batches are a random permutation
  drawn with ``key_order`` cut into ``n // batch_size`` batches (the remainder dropped);
  ``order``, a ``[n_batches, batch_size]`` integer array of example indices, fixes them instead
  (e.g. from :func:`jdbn.data.balanced_order`), and ``"balanced"`` draws class-balanced ones,
  ``balanced_order(key_order, labels, batch_size, n_labels)``. Update ``i`` takes
  ``split(key_steps, n_batches)[i]`` in every case.
  """
  x, y = _split_batch(data)
  _check_epoch_data(state.params, x, y, batch_size)
  key_order, _ = jax.random.split(key)  # as loop.run_epoch splits it
  order = _batch_order(key_order, order, y, batch_size, x.shape[0], n_labels(state.params.top))
  x = x.astype(state.params.top.W.dtype)
  return loop.run_epoch(update, key, state, x if y is None else (x, y), batch_size, order)


def _check_epoch_data(model: UntiedDBN, x: Array, y: Optional[Array], batch_size: int) -> None:
  """Raises ValueError unless ``x: [n, n_visible]``, ``y: [n]`` (or one-hot) and the batch size
  fit ``model`` and each other."""
  n_vis = layer_sizes(model)[0]
  if x.ndim != 2 or x.shape[1] != n_vis:
    raise ValueError(f"data must have shape [n, {n_vis}], got {tuple(x.shape)}")
  if y is not None and y.shape[:1] != x.shape[:1]:
    raise ValueError(f"labels have shape {tuple(y.shape)} for {x.shape[0]} examples")
  if y is not None and y.ndim == 1:
    _check_label_values(y, n_labels(model.top))
  if not isinstance(batch_size, int) or not 0 < batch_size <= x.shape[0]:
    raise ValueError(f"batch_size must be an int in [1, {x.shape[0]}], got {batch_size!r}")


def _batch_order(key: Array, order: Union[None, str, ArrayLike], y: Optional[Array],
                 batch_size: int, n: int, n_lab: int) -> Optional[Array]:
  """The epoch's ``[n_batches, batch_size]`` example indices (checked), or ``None`` for a
  random permutation; ``"balanced"`` draws class-balanced batches with ``key``."""
  if isinstance(order, str):
    if order != "balanced":
      raise ValueError(f"order must be None, 'balanced' or an index array, got {order!r}")
    if y is None:
      raise ValueError("order='balanced' needs labelled batches (x, labels)")
    return jdata.balanced_order(key, y, batch_size, n_lab)
  if order is not None:
    order = jnp.asarray(order)
    if (order.ndim != 2 or order.shape[0] < 1 or order.shape[1] != batch_size
        or not jnp.issubdtype(order.dtype, jnp.integer)):
      raise ValueError(f"order must be an integer array [n_batches, {batch_size}], got "
                       f"{order.dtype} of shape {tuple(order.shape)}")
    if int(order.min()) < 0 or int(order.max()) >= n:
      raise ValueError(f"order indexes examples outside [0, {n})")
  return order
