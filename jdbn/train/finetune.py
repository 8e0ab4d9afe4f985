"""Discriminative fine-tuning: a Flax network initialised from a DBN, trained with Optax.

The pretrained stack becomes a feed-forward network of sigmoid layers, layer ``l`` computing
``sigmoid(x W_l + c_l)`` with each RBM's weights ``W_l`` and hidden biases ``c_l`` (its mean-field
recognition pass), followed by a softmax output layer, and the whole is trained by
back-propagating the cross-entropy (Hinton & Salakhutdinov 2006, "Reducing the dimensionality of
data with neural networks", Science 313, and its supporting material: 1.2% test error on MNIST
for 784-500-500-2000-10; Srivastava et al. 2014, "Dropout", JMLR 15: 0.92% with dropout).

The network, its initialisation from a DBN (:func:`from_dbn`, :func:`init_random`) and its
evaluation (:func:`predict_logits`, :func:`error_rate`) are :mod:`jdbn.train.classifier`'s,
re-exported here; this module trains it.

Example::

    module, variables = from_dbn(dbn, dropout_rate=0.5)
    state, history = train(key, module, variables, (x_train, y_train), (x_valid, y_valid),
                           optax.sgd(0.1, momentum=0.9), epochs=50, batch_size=100, patience=10)
    test_error = error_rate(module, state.best_variables, x_test, y_test)

Every epoch is one ``lax.scan`` over its mini-batches inside one ``jit``; the best variables by
validation error are kept (early stopping). :func:`fit` is :func:`train` with a checkpoint after
every epoch that a rerun resumes from (what ``jdbn train dbn``, ``jdbn train dbm`` and the DBN
reproduction run), and :func:`optimizer` the SGD they share.
"""

from __future__ import annotations

import functools
import os
import pathlib
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jdbn import checkpoint as C
from jdbn.train import loop
from jdbn.train.classifier import Classifier, error_rate, from_dbn, init_random, predict_logits

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

__all__ = ["Classifier", "from_dbn", "init_random", "predict_logits", "error_rate",
           "FinetuneState", "EpochInfo", "init_state", "max_norm", "column_norms", "loss_fn",
           "make_epoch", "optimizer", "train", "fit"]

# --------------------------------------------------------------------------- training


@struct.dataclass
class FinetuneState:
  """Training state of :func:`train`, everything needed to resume it exactly.

  Attributes:
    variables: current variables ``{"params": ...}``.
    opt_state: the optimizer's state.
    step: updates applied so far.
    epoch: epochs completed.
    best_variables: the variables with the lowest validation error (or loss, see
      :func:`train`'s ``monitor``) so far.
    best_error: that validation error or loss (``inf`` before the first epoch).
    best_epoch: the (1-based) epoch it was reached (0 before the first epoch).
    bad_epochs: epochs since the validation error last improved.
  """
  variables: Any
  opt_state: Any
  step: Array
  epoch: Array
  best_variables: Any
  best_error: Array
  best_epoch: Array
  bad_epochs: Array


class EpochInfo(NamedTuple):
  """Means over one epoch's updates: cross-entropy ``loss`` and training ``error`` (with dropout)."""
  loss: Array
  error: Array


def init_state(variables: dict, optimizer: optax.GradientTransformation) -> FinetuneState:
  """The state before the first epoch."""
  zero = jnp.zeros((), jnp.int32)
  return FinetuneState(variables, optimizer.init(variables["params"]), zero, zero, variables,
                       jnp.asarray(jnp.inf, jnp.float32), zero, zero)


def max_norm(max_value: float) -> optax.GradientTransformation:
  """Max-norm weight constraint (Srivastava et al. 2014, section 5.1) as an Optax transformation.

  After the update, the weight vector coming into each unit, a column ``kernel[:, j]`` of every
  parameter with two or more dimensions (flattened over all axes but the last), has Euclidean norm
  at most ``max_value``: a column longer than that is scaled back onto the ball of radius
  ``max_value``, ``w_j <- w_j * min(1, max_value / |w_j|)``. Biases (1-D parameters) are left
  alone. Put it last in a chain so that it projects the parameters the update lands on::

      optimizer = optax.chain(optax.sgd(0.1, momentum=0.9), max_norm(4.0))

  The update it returns is ``projected(params + updates) - params``, so ``optax.apply_updates``
  lands exactly on the projected parameters.

  Args:
    max_value: the largest norm allowed (Srivastava et al. use 3 to 4 with dropout).
  """
  if not max_value > 0:
    raise ValueError(f"max_value must be positive, got {max_value!r}")

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("max_norm needs the params: call update(updates, state, params)")

    def project(u, p):
      if p.ndim < 2:
        return u
      new = p + u
      norm = jnp.sqrt(jnp.sum(jnp.square(new), axis=tuple(range(new.ndim - 1)), keepdims=True))
      scale = jnp.minimum(1.0, max_value / jnp.maximum(norm, jnp.finfo(new.dtype).tiny))
      return (new * scale - p).astype(u.dtype)

    return jax.tree.map(project, updates, params), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def optimizer(lr: float, *, momentum: Optional[float] = 0.9, decay_steps: Optional[int] = None,
              max_norm_value: Optional[float] = None) -> optax.GradientTransformation:
  """SGD for fine-tuning: ``optax.sgd(lr, momentum)``, then :func:`max_norm` when given.

  Args:
    lr: the learning rate.
    momentum: SGD momentum (``None``: none).
    decay_steps: if given, the rate decays to 0 along a cosine over this many updates
      (``optax.cosine_decay_schedule``; e.g. epochs times batches per epoch).
    max_norm_value: if given, the bound of :func:`max_norm` on each unit's incoming weights.
  """
  if decay_steps:
    lr = optax.cosine_decay_schedule(lr, decay_steps)
  opt = optax.sgd(lr, momentum=momentum)
  return optax.chain(opt, max_norm(max_norm_value)) if max_norm_value else opt


def column_norms(variables: dict) -> dict[str, Array]:
  """Norm of the weights coming into each unit: ``{layer: [n_out]}`` for every Dense kernel."""
  return {name: jnp.linalg.norm(layer["kernel"], axis=0)
          for name, layer in variables["params"].items()}


def loss_fn(module: Classifier, params, x: Array, y: Array, key: Optional[Array],
            train: bool = True) -> tuple[Array, Array]:
  """Mean softmax cross-entropy ``-mean_i log softmax(f(x_i))_{y_i}`` and the error rate."""
  rngs = {"dropout": key} if key is not None else None
  logits = module.apply({"params": params}, x, train=train, rngs=rngs)
  loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
  return loss, jnp.mean(jnp.argmax(logits, -1) != y)


@functools.lru_cache(maxsize=32)
def make_epoch(module: Classifier, optimizer: optax.GradientTransformation,
               batch_size: int) -> Callable[..., tuple[FinetuneState, EpochInfo]]:
  """``epoch(key, state, x, y) -> (state, EpochInfo)``: one jitted ``lax.scan`` over the batches.

  The examples are permuted by ``key`` and cut into ``n // batch_size`` batches (the rest is
  skipped); each update draws its own dropout key. Only ``variables``, ``opt_state`` and ``step``
  change; :func:`train` does the bookkeeping of the best variables. Cached on its (hashable)
  arguments, so training the same module with the same optimizer object again reuses the
  compiled epoch.
  """

  @jax.jit
  def epoch(key, state: FinetuneState, x, y):
    key_perm, key_steps = jax.random.split(key)
    n_batches = x.shape[0] // batch_size
    order = jax.random.permutation(key_perm, x.shape[0])[:n_batches * batch_size]
    xb = x[order].reshape((n_batches, batch_size) + x.shape[1:])
    yb = y[order].reshape((n_batches, batch_size))

    def body(carry, inputs):
      params, opt_state = carry
      k, xi, yi = inputs
      (loss, err), grads = jax.value_and_grad(
          lambda p: loss_fn(module, p, xi, yi, k), has_aux=True)(params)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), EpochInfo(loss, err)

    (params, opt_state), infos = jax.lax.scan(
        body, (state.variables["params"], state.opt_state),
        (jax.random.split(key_steps, n_batches), xb, yb))
    state = state.replace(variables={**state.variables, "params": params}, opt_state=opt_state,
                          step=state.step + n_batches)
    return state, jax.tree.map(jnp.mean, infos)

  return epoch


def train(key: Array, module: Classifier, variables: dict,
          train_data: tuple[ArrayLike, ArrayLike], validation: tuple[ArrayLike, ArrayLike],
          optimizer: optax.GradientTransformation, *, epochs: int, batch_size: int,
          patience: Optional[int] = None, monitor: str = "error",
          state: Optional[FinetuneState] = None, progress: bool | str = True,
          eval_batch_size: int = 1000,
          callback: Optional[Callable[[int, FinetuneState, dict], Any]] = None
          ) -> tuple[FinetuneState, list[dict]]:
  """Trains a :class:`Classifier` on cross-entropy with early stopping on a validation split.

  Epoch ``e`` (0-based) runs :func:`make_epoch`'s function with key ``fold_in(key, e)``, so a run
  resumed from a saved ``state`` continues exactly. After every epoch the validation error is
  measured; the variables with the lowest one are kept in ``state.best_variables`` and training
  stops after ``patience`` epochs without improvement (MNIST convention: validate on the last
  10,000 training images, ``jdbn.data.split_validation(ds, 10_000)``).

  Args:
    key: PRNG key.
    module: the network, from :func:`from_dbn` or :func:`init_random`.
    variables: its initial variables (ignored when ``state`` is given).
    train_data: ``(x [n, n_in] float, y [n] int)``.
    validation: ``(x_val, y_val)``.
    optimizer: any Optax transformation, e.g. ``optax.sgd(0.1, momentum=0.9)`` or
      ``optax.adam(1e-3)``.
    epochs: maximum total number of epochs (those already in ``state`` included).
    batch_size: examples per update.
    patience: stop after this many epochs without a lower validation error (None: never).
    monitor: what "lower" and "best" refer to: ``"error"`` (the validation error rate) or
      ``"loss"`` (the validation cross-entropy, which keeps improving after a small validation
      set is classified without error); ``state.best_error`` then holds that value.
    state: a :class:`FinetuneState` to resume from (e.g. loaded with :mod:`jdbn.checkpoint`).
    progress: tqdm bar over epochs (a string is its description).
    eval_batch_size: chunk size of the validation pass.
    callback: ``callback(epoch, state, row)`` after every epoch (``epoch`` 1-based), e.g. to save
      a checkpoint; a true return value stops training.

  Returns:
    ``(state, history)``: the final :class:`FinetuneState` (``state.best_variables`` are the
    early-stopped variables) and one dict per epoch in this call (``epoch``, ``loss``,
    ``train_error``, ``valid_error``, ``valid_loss``, ``seconds``).
  """
  x, y, x_val, y_val = _check_train_args(train_data, validation, batch_size, patience, monitor)
  if state is None:
    state = init_state(variables, optimizer)
  epoch_fn = make_epoch(module, optimizer, batch_size)
  if patience is not None and int(state.bad_epochs) >= patience:
    return state, []
  one_epoch = functools.partial(_train_epoch, key, epoch_fn=epoch_fn, module=module, x=x, y=y,
                                x_val=x_val, y_val=y_val, eval_batch_size=eval_batch_size,
                                monitor=monitor)
  stop = functools.partial(_stop, callback=callback, patience=patience)
  return loop.fit(state, one_epoch, epochs=epochs, start=int(state.epoch), callback=stop,
                  progress="finetune" if progress is True else progress,
                  postfix=("loss", "valid_error"), advice="Lower the learning rate",
                  params_of=lambda s: s.variables, describe_checkpoint=False)


def fit(key: Array, module: Classifier, variables: dict,
        train_data: tuple[ArrayLike, ArrayLike], validation: tuple[ArrayLike, ArrayLike],
        optimizer: optax.GradientTransformation, *, epochs: int, batch_size: int,
        patience: Optional[int] = None, path: Optional[Union[str, os.PathLike]] = None,
        metadata: Optional[dict] = None, resume_if: Optional[Sequence[str]] = None,
        progress: bool | str = True,
        callback: Optional[Callable[[int, FinetuneState, dict], Any]] = None
        ) -> tuple[FinetuneState, list[dict]]:
  """:func:`train`, resumable: after every epoch the state goes to the checkpoint ``path``.

  The checkpoint is ``{"state": FinetuneState}`` with ``epoch``, ``history`` (every epoch's row
  so far) and ``metadata`` in its metadata. A run finding it resumes from it and continues the
  same epochs exactly (:func:`train`'s keys depend only on the epoch), unless it was written with
  other values of the ``resume_if`` keys of ``metadata`` (e.g. the DBN the network was made from
  has been trained further since): fine-tuning then starts again from ``variables``, and says so.

  Args:
    key, module, variables, train_data, validation, optimizer, epochs, batch_size, patience,
      progress: as for :func:`train` (``epochs`` counts those already in the checkpoint).
    path: the checkpoint file (``None``: none, as :func:`train`).
    metadata: JSON settings saved with it.
    resume_if: the keys of ``metadata`` that must be as saved to resume (default: all).
    callback: :func:`train`'s, called after the checkpoint is written.

  Returns:
    ``(state, history)``: the final state and the rows of every epoch, resumed ones included.
  """
  state, history = init_state(variables, optimizer), []
  metadata = dict(metadata or {})
  if path is not None and pathlib.Path(path).is_file():
    tree, meta = C.restore(path, like={"state": state})
    keys = metadata if resume_if is None else resume_if
    changed = {k: meta[k] for k in keys if k in meta and meta[k] != metadata[k]}
    if changed:
      print(f"fine-tuning in {path} was run with {changed}, now "
            f"{ {k: metadata[k] for k in changed} }: fine-tuning starts again")
    else:
      state, history = tree["state"], list(meta.get("history", []))

  def save(epoch, st, row):
    history.append(row)
    if path is not None:
      C.save(path, {"state": st}, metadata={"epoch": epoch, "history": history, **metadata})
    return callback is not None and callback(epoch, st, row)

  state, _ = train(key, module, variables, train_data, validation, optimizer, epochs=epochs,
                   batch_size=batch_size, patience=patience, state=state, progress=progress,
                   callback=save)
  return state, history


def _check_train_args(train_data: tuple[ArrayLike, ArrayLike],
                      validation: tuple[ArrayLike, ArrayLike], batch_size: int,
                      patience: Optional[int], monitor: str) -> tuple[Array, ...]:
  """``(x, y, x_val, y_val)`` as float32 and int32 arrays, after checking :func:`train`'s
  arguments: ValueError for shapes that do not fit, a bad batch size, patience or monitor."""
  x, y = (jnp.asarray(a) for a in train_data)
  x_val, y_val = (jnp.asarray(a) for a in validation)
  x, x_val = x.astype(jnp.float32), x_val.astype(jnp.float32)
  y, y_val = y.astype(jnp.int32), y_val.astype(jnp.int32)
  if x.ndim != 2 or y.shape != (x.shape[0],):
    raise ValueError(f"train_data must be (x [n, d], y [n]), got {x.shape} and {y.shape}")
  if x_val.ndim != 2 or x_val.shape[1] != x.shape[1] or y_val.shape != (x_val.shape[0],):
    raise ValueError(f"validation must be (x [m, {x.shape[1]}], y [m]), got {x_val.shape} and "
                     f"{y_val.shape}")
  if not isinstance(batch_size, int) or not 0 < batch_size <= x.shape[0]:
    raise ValueError(f"batch_size must be an int in [1, {x.shape[0]}], got {batch_size!r}")
  if patience is not None and patience < 1:
    raise ValueError(f"patience must be a positive int or None, got {patience!r}")
  if monitor not in ("error", "loss"):
    raise ValueError(f"monitor must be 'error' or 'loss', got {monitor!r}")
  return x, y, x_val, y_val


def _train_epoch(key: Array, e: int, state: FinetuneState, *, epoch_fn: Callable,
                 module: Classifier, x: Array, y: Array, x_val: Array, y_val: Array,
                 eval_batch_size: int, monitor: str) -> tuple[FinetuneState, dict]:
  """Epoch ``e`` of :func:`train`: the updates (key ``fold_in(key, e)``), the validation pass,
  and the bookkeeping of the best variables; ``(state, row of metrics)``."""
  state, info = epoch_fn(jax.random.fold_in(key, e), state, x, y)
  logits = predict_logits(module, state.variables, x_val, batch_size=eval_batch_size)
  valid_error = float(jnp.mean(jnp.argmax(logits, -1) != y_val))
  valid_loss = float(jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y_val)))
  value = valid_error if monitor == "error" else valid_loss
  improved = value < float(state.best_error)
  state = state.replace(
      epoch=state.epoch + 1,
      best_variables=state.variables if improved else state.best_variables,
      best_error=jnp.asarray(value if improved else state.best_error, jnp.float32),
      best_epoch=jnp.asarray(e + 1 if improved else state.best_epoch, jnp.int32),
      bad_epochs=jnp.asarray(0 if improved else state.bad_epochs + 1, jnp.int32))
  return state, {"loss": float(info.loss), "train_error": float(info.error),
                 "valid_error": valid_error, "valid_loss": valid_loss}


def _stop(epoch: int, state: FinetuneState, row: dict, *, callback: Optional[Callable],
          patience: Optional[int]) -> bool:
  """:func:`train`'s stopping rule: the callback asks to, or ``patience`` epochs of no progress."""
  asked = callback is not None and callback(epoch, state, row)
  return asked or (patience is not None and int(state.bad_epochs) >= patience)
