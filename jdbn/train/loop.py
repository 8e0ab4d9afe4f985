"""The training loop: one epoch as one ``lax.scan`` inside one ``jit``, epochs with monitoring.

:func:`fit` is the one loop every trainer runs through (RBM training in :func:`jdbn.train.fit`,
up-down in the ``jdbn`` command): progress bar, per-epoch metrics, the caller's checkpoints,
the divergence stop (:class:`TrainingDiverged`) and resumption from any epoch.

Every trainer of jdbn (contrastive CD/PCD for any block model, up-down for DBNs) batches its
epochs through :func:`run_epoch`: the key splits into ``(key_order, key_steps)``; the batches
are a random permutation drawn with ``key_order`` cut into ``n // batch_size`` batches (the
remainder dropped) unless an explicit ``order`` is given; update ``i`` takes
``split(key_steps, n_batches)[i]``. Python pays once per epoch, not once per update.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import pathlib
import time
from typing import Any, Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jdbn import sharding

Array = jax.Array


@functools.partial(jax.jit, static_argnames=("update", "batch_size", "layout", "metrics"))
def run_epoch(update: Callable[..., tuple[Any, Any]],
              key: Array,
              state: Any,
              data: Any,
              batch_size: int,
              order: Optional[Array] = None,
              *,
              layout: Optional[NamedSharding] = None,
              metrics: bool = True) -> tuple[Any, Any]:
  """One pass of ``update(key, state, batch) -> (state, info)`` over mini-batches of ``data``.

  Args:
    update: the trainer's update (static: a new function compiles anew).
    key: PRNG key.
    state: the train state.
    data: ``[n, ...]`` or a pytree of such arrays sharing ``n`` (e.g. ``(x, labels)``).
    batch_size: examples per update (static).
    order: optional ``[n_batches, batch_size]`` example indices fixing the batches.
    layout: a ``NamedSharding`` for ``[n_batches, batch_size, ...]`` when the data lives on a
      mesh (:func:`jdbn.sharding.epoch_batch_sharding`): each device then keeps its part of
      every batch.
    metrics: return the mean of the updates' ``info`` (else ``None``, and XLA drops what only
      the diagnostics need).

  Returns:
    ``(state, info)``.
  """
  key_order, key_steps = jax.random.split(key)
  if order is None:
    n = jax.tree.leaves(data)[0].shape[0]
    n_batches = n // batch_size
    order = jax.random.permutation(key_order, n)[:n_batches * batch_size]
    order = order.reshape(n_batches, batch_size)
  if layout is not None:  # a global shuffle needs every row (no-op if replicated)
    everywhere = NamedSharding(layout.mesh, P())
    data = jax.tree.map(lambda a: sharding.constrain(a, everywhere), data)
  batches = jax.tree.map(lambda a: a[order], data)
  if layout is not None:  # each device keeps its part of every batch
    batches = jax.tree.map(lambda a: sharding.constrain(a, layout), batches)

  def body(s, xs):
    k, b = xs
    s, info = update(k, s, b)
    return s, (info if metrics else None)

  state, infos = jax.lax.scan(body, state, (jax.random.split(key_steps, order.shape[0]), batches))
  return state, (jax.tree.map(jnp.mean, infos) if metrics else None)


class TrainingDiverged(FloatingPointError):
  """Training produced NaN or inf params or loss: the one exception every jdbn loop raises.

  Attributes:
    epoch: the (1-based) epoch that diverged.
    state: the last good train state (before that epoch).
    history: the metrics of the good epochs.
    checkpoint: path of the last good checkpoint on disk, or ``None``.
  """

  def __init__(self, message: str, *, epoch: int, state: Any, history: list,
               checkpoint: Optional[pathlib.Path]):
    super().__init__(message)
    self.epoch = epoch
    self.state = state
    self.history = history
    self.checkpoint = checkpoint


def set_learning_rate(state: Any, lr: float) -> Any:
  """``state`` with the learning rate in its optimizer state set to ``lr`` (float32).

  For a train state whose ``opt_state`` holds an ``optax.inject_hyperparams`` optimizer with a
  ``learning_rate`` hyperparameter (e.g. :func:`jdbn.train.updown.optimizer`): the rate of an
  epoch set before it runs, with the rest of the optimizer state (momentum) carried over, so a
  schedule per epoch can change, or start, when a run resumes.
  """
  return state.replace(opt_state=optax.tree_utils.tree_set(
      state.opt_state, learning_rate=jnp.asarray(lr, jnp.float32)))


def rate_schedule(lr: float, epochs: int, decay_start: Optional[int] = None
                  ) -> Callable[[int], float]:
  """The learning rate of each 0-based epoch: ``lr``, or with ``decay_start`` ``lr`` until that
  epoch and then a linear fall towards 0 at ``epochs`` (``optax.linear_schedule``, one rate per
  epoch; HOT 2006 anneal up-down's rate so, as ``--updown-lr-decay-start`` does).

  An ``lr_of`` for :func:`jdbn.train.updown.fit`, or for :func:`set_learning_rate` before each
  epoch of any loop, so that a run trained at a constant rate can resume with a decay.
  """
  if decay_start is None:
    return lambda epoch: lr
  schedule = optax.linear_schedule(lr, 0.0, epochs - decay_start, decay_start)
  return lambda epoch: float(schedule(epoch))


def non_finite(params: Any, row: dict) -> list[str]:
  """What is NaN or inf: ``loss=...`` from ``row`` and the paths of non-finite params leaves."""
  bad = []
  loss = row.get("loss")
  if loss is not None and not math.isfinite(loss):
    bad.append(f"loss={loss}")
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    if not bool(jnp.all(jnp.isfinite(leaf))):
      bad.append(f"params{jax.tree_util.keystr(path)}")
  return bad


def fit(state: Any,
        epoch_fn: Callable[[int, Any], tuple[Any, dict]],
        *,
        epochs: int,
        start: int = 0,
        history: Optional[list] = None,
        evaluate: Optional[Callable[[int, Any], dict]] = None,
        save: Optional[Callable[[int, Any, list], None]] = None,
        checkpoint: Optional[Union[str, os.PathLike]] = None,
        progress: Union[bool, str] = True,
        postfix: Sequence[str] = ("loss",),
        callback: Optional[Callable[[int, Any, dict], Any]] = None,
        advice: str = "Try a lower learning rate",
        params_of: Callable[[Any], Any] = lambda s: s.params,
        describe_checkpoint: bool = True) -> tuple[Any, list]:
  """The one training loop: epochs ``start .. epochs - 1`` of ``epoch_fn`` with monitoring.

  For every epoch ``e`` (0-based): ``state, row = epoch_fn(e, state)`` (a dict of floats; the
  caller chooses the key, e.g. ``fold_in(key, e)``, so a resumed run repeats the same epochs),
  timed as ``row["seconds"]``; a non-finite ``row["loss"]`` or params leaf raises
  :class:`TrainingDiverged` with the last good state, leaving the last checkpoint untouched;
  ``evaluate(e + 1, state)`` adds metrics (outside the timed part); ``row["epoch"] = e + 1``
  goes to the history; ``save(e + 1, state, history)`` writes the caller's checkpoint; a tqdm bar (stderr) shows the
  ``postfix`` metrics, and says "compiling" until the first epoch is done, since that one
  includes compilation; ``callback(e + 1, state, row)`` returning true stops.

  Args:
    state: the train state to continue from (its ``params`` field is checked for NaN/inf).
    epoch_fn: ``(epoch, state) -> (state, row)``.
    epochs: total number of epochs.
    start: epochs already done (resuming).
    history: the rows of those epochs.
    evaluate: optional ``(epochs_done, state) -> dict`` of further metrics.
    save: optional ``(epochs_done, state, history) -> None``, called after every epoch.
    checkpoint: the path ``save`` writes, named in the divergence message.
    progress: show a progress bar; a string is its description.
    postfix: row keys shown on the bar.
    callback: ``(epoch, state, row) -> stop?``.
    advice: what the divergence message suggests.
    params_of: the part of the state checked for NaN and inf (default ``state.params``).
    describe_checkpoint: whether the divergence message says where the last good checkpoint
      is (off when the caller's ``callback`` writes the checkpoints).

  Returns:
    ``(state, history)``.
  """
  history = [] if history is None else list(history)
  diverged = functools.partial(_diverged, epochs=epochs, checkpoint=checkpoint, advice=advice,
                               describe_checkpoint=describe_checkpoint)
  with _progress_bar(progress, start, epochs) as bar:
    for epoch in range(start, epochs):
      state, row = _checked_epoch(epoch_fn, epoch, state, history, params_of, evaluate, diverged)
      history.append(row)
      if save is not None:
        save(epoch + 1, state, history)
      _advance(bar, row, postfix)
      if callback is not None and callback(epoch + 1, state, row):
        break
  return state, history


@contextlib.contextmanager
def _progress_bar(progress: Union[bool, str], start: int, epochs: int):
  """A tqdm bar over epochs saying "compiling" until the first is done (``None`` when off or
  nothing is left to do); closed on leaving, whatever happens."""
  bar = None
  if progress and start < epochs:
    from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
    bar = tqdm(total=epochs, initial=start, unit="epoch", dynamic_ncols=True,
               desc=progress if isinstance(progress, str) else "train")
    bar.set_postfix_str("compiling", refresh=True)
  try:
    yield bar
  finally:
    if bar is not None:
      bar.close()


def _checked_epoch(epoch_fn, epoch, state, history, params_of, evaluate, diverged):
  """Runs epoch ``epoch`` (0-based), timed; returns ``(state, row)`` with the row complete
  (``epoch``, the epoch's metrics, ``evaluate``'s, ``seconds``), or raises ``diverged(...)``
  (a :class:`TrainingDiverged` holding the last good ``state``) on NaN or inf."""
  t0 = time.perf_counter()
  new_state, row = epoch_fn(epoch, state)
  jax.block_until_ready(new_state)
  seconds = time.perf_counter() - t0
  bad = non_finite(params_of(new_state), row)
  if bad:
    raise diverged(bad, epoch, state=state, history=history)
  row = {"epoch": epoch + 1, **row}
  if evaluate is not None:
    row.update(evaluate(epoch + 1, new_state))
  row["seconds"] = seconds
  return new_state, row


def _advance(bar, row: dict, postfix: Sequence[str]) -> None:
  if bar is not None:
    bar.set_postfix(_postfix(row, postfix), refresh=False)
    bar.update(1)


def _diverged(bad, epoch, epochs, state, history, checkpoint, advice, describe_checkpoint):
  good = (pathlib.Path(checkpoint)
          if checkpoint is not None and pathlib.Path(checkpoint).exists() else None)
  where = (f"; the last good checkpoint, {good} (epoch {epoch}), is untouched"
           if good is not None else "; no checkpoint was written")
  return TrainingDiverged(
      f"training diverged in epoch {epoch + 1} of {epochs}: non-finite "
      f"{', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''}. {advice}"
      f"{where if describe_checkpoint else ''}.",
      epoch=epoch + 1, state=state, history=history, checkpoint=good)


_SHORT = {"pseudo_likelihood": "pl", "free_energy_gap": "F_gap"}


def _postfix(row: dict, keys: Sequence[str]) -> dict:
  return {_SHORT.get(k, k): f"{row[k]:.4g}" for k in keys
          if isinstance(row.get(k), (int, float)) and math.isfinite(row[k])}
