"""The training loop: epochs of a contrastive :class:`~jdbn.contrastive.Trainer`, with monitoring,
checkpoints and exact resumption.

:func:`fit` runs ``trainer.epoch`` (one ``jit``, one ``lax.scan`` over the epoch's mini-batches)
once per epoch and, between epochs, on the host: computes monitoring metrics, shows them on a
progress bar, saves a checkpoint and stops if training diverged. Example::

    trainer = jdbn.contrastive.pcd(optax.sgd(0.05, momentum=0.5), n_chains=100)
    state, history = jdbn.train.fit(key, trainer, params, train_x, epochs=20, batch_size=100,
                                    validation=valid_x, checkpoint_dir="runs/rbm")
    history[-1]["free_energy_gap"]      # > 0 and growing: the model is overfitting

The same call with the same ``checkpoint_dir`` after an interruption continues from the last
completed epoch and ends with bit-identical params: epoch ``e`` always uses the key
``fold_in(key_epochs, e)``, whatever happened before it. A DBN is trained by calling :func:`fit`
once per layer, each with its own ``checkpoint_dir``.

The metrics (Hinton 2010, "A practical guide to training RBMs", sections 5 and 6):

* ``loss``, ``recon_error``, ``grad_norm``: means over the epoch's updates (:class:`Info`).
* ``pseudo_likelihood``: mean log pseudo-likelihood per example (nats) of ``eval_size`` training
  examples, Bernoulli visible units only; the cheap estimate ``n_visible * log p(v_i | v_-i)``
  with one random unit ``i`` per example (as scikit-learn's ``BernoulliRBM.score_samples``), the
  same units every epoch so that epochs compare like with like. Also ``pseudo_likelihood_valid``
  on the validation examples. (:func:`jdbn.likelihood.pseudo_likelihood` with ``key=None`` gives
  the exact sum, at ``n_visible`` times the cost.)
* ``free_energy_train``, ``free_energy_valid``: mean free energy of ``eval_size`` training
  examples and of as many validation examples; ``free_energy_gap = valid - train``. The gap
  removes the unknown ``log Z``; a gap that grows means the model fits the training data better
  than held-out data, i.e. overfits (section 6).
* ``seconds``: wall-clock time of the epoch's updates.
"""

from __future__ import annotations

import os
import pathlib
import warnings
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdbn import checkpoint as C
from jdbn.train import contrastive
from jdbn import likelihood
from jdbn.train import loop
from jdbn.train.loop import TrainingDiverged  # noqa: F401  (public here)
from jdbn.models import centered as CM
from jdbn.models import rbm as R
from jdbn import units as U

__all__ = ["CHECKPOINT_NAME", "METRICS_NAME", "TrainingDiverged", "fit", "evaluate_metrics",
           "hinton_sgd"]

CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAME = "metrics.json"


@jax.jit
def _metrics(key, params: R.RBM, train_x, valid_x):
  out = {"free_energy_train": jnp.mean(R.free_energy(params, train_x))}
  if valid_x is not None:
    out["free_energy_valid"] = jnp.mean(R.free_energy(params, valid_x))
    out["free_energy_gap"] = out["free_energy_valid"] - out["free_energy_train"]
  if isinstance(params.visible, U.Bernoulli):
    k_train, k_valid = jax.random.split(key)
    out["pseudo_likelihood"] = jnp.mean(likelihood.pseudo_likelihood(k_train, params, train_x))
    if valid_x is not None:
      out["pseudo_likelihood_valid"] = jnp.mean(
          likelihood.pseudo_likelihood(k_valid, params, valid_x))
  return out


def evaluate_metrics(key: jax.Array, params: R.RBM, train_x: jax.Array,
                     valid_x: Optional[jax.Array] = None) -> dict[str, float]:
  """The monitoring metrics of :func:`fit` that depend only on the params.

  Args:
    key: PRNG key (picks the units of the stochastic pseudo-likelihood).
    params: RBM params (a centered RBM is scored as the RBM it equals).
    train_x: ``[n, n_visible]`` training examples to evaluate.
    valid_x: optional ``[m, n_visible]`` validation examples (use ``m = n`` for a fair gap).

  Returns:
    Dict of Python floats: ``free_energy_train`` and, with ``valid_x``, ``free_energy_valid``
    and ``free_energy_gap``; for Bernoulli visible units ``pseudo_likelihood`` (and
    ``pseudo_likelihood_valid``).
  """
  params = plain(params)
  out = _metrics(key, params, jnp.asarray(train_x, params.W.dtype),
                 None if valid_x is None else jnp.asarray(valid_x, params.W.dtype))
  return {k: float(v) for k, v in out.items()}


def hinton_sgd(lr: float, *, weight_decay: float, steps_per_epoch: int,
               momentum: tuple[float, float] = (0.5, 0.9),
               switch_epoch: int = 5) -> optax.GradientTransformation:
  """SGD as Hinton's practical guide trains RBMs (Hinton 2010, sections 9 and 10).

  ``optax.chain(add_decayed_weights(weight_decay) on the weights W only, sgd)``, the momentum
  ``momentum[0]`` for the first ``switch_epoch`` epochs (``switch_epoch * steps_per_epoch``
  updates) and ``momentum[1]`` after, the rate and the momentum hyperparameters of
  ``optax.inject_hyperparams``: :func:`jdbn.train.loop.set_learning_rate` changes the rate between
  epochs with the momentum kept. The recipe of the 2006 DBN's pretraining and of Salakhutdinov &
  Murray's (2008) RBMs (``experiments/``).
  """
  from jdbn.models.base import weights_only  # pylint: disable=import-outside-toplevel
  low, high = momentum
  sgd = optax.inject_hyperparams(optax.sgd)(
      learning_rate=lr,
      momentum=lambda step: jnp.where(step < switch_epoch * steps_per_epoch, low, high))
  return optax.chain(optax.add_decayed_weights(weight_decay, mask=weights_only), sgd)


def _check_int(value, name: str, low: int = 1) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
  return int(value)


def plain(params: Union[R.RBM, CM.CenteredRBM]) -> R.RBM:
  """The RBM a :class:`~jdbn.models.centered.CenteredRBM` equals; an RBM as it is."""
  return CM.uncentered(params) if isinstance(params, CM.CenteredRBM) else params


def _check_data(params: R.RBM, x, name: str) -> jax.Array:
  params = plain(params)
  x = R.check_visible(params, x, name)
  if x.ndim != 2:
    raise ValueError(f"{name} must have shape [n_examples, {params.n_visible}], got "
                     f"{tuple(x.shape)}")
  if x.shape[0] == 0:
    raise ValueError(f"{name} is empty")
  return x


def run_settings(trainer, params, data, batch_size: int) -> dict:
  """What a resumed run must share with the run that wrote the checkpoint (JSON).

  The trainer's :attr:`~jdbn.contrastive.Trainer.config` (algorithm, ``k``, sparsity, chains),
  the optimizer's first update of an all-ones gradient (which differs when the learning rate,
  momentum, weight decay or the optimizer itself differs), the batch size and a digest of the
  data.
  """
  out = {"batch_size": int(batch_size), "data": _digest(data)}
  config = dict(getattr(trainer, "config", None) or {})
  optimizer = config.pop("optimizer", None)
  out.update({k: v for k, v in config.items() if isinstance(v, (str, int, float, bool, list,
                                                                 type(None)))})
  if optimizer is not None:
    ones = jax.tree.map(jnp.ones_like, params)
    first, _ = optimizer.update(ones, optimizer.init(params), params)
    out["optimizer_first_update"] = [float(f"{float(jnp.mean(u)):.6g}")
                                     for u in jax.tree.leaves(first)]
  return out


def settings_diff(old: Optional[dict], new: dict) -> list[str]:
  """``"name: old -> new"`` for every setting both runs record that differs (a trainer without
  a ``config`` records only the data and the batch size)."""
  if not old:
    return []
  names = {"optimizer_first_update": "optimizer (learning rate, momentum, decay)",
           "data": "training data"}
  return [f"{names.get(k, k)}: {old.get(k)!r} -> {new.get(k)!r}"
          for k in sorted(set(old) & set(new)) if old[k] != new[k]]


def _digest(data) -> str:
  import hashlib  # pylint: disable=import-outside-toplevel
  x = np.ascontiguousarray(np.asarray(data))
  return f"{x.shape[0]}x{x.shape[1]}:" + hashlib.sha256(x.tobytes()).hexdigest()[:16]


def _checked_once(trainer) -> dict:
  """``check=False`` for trainers whose epoch takes it: fit has checked the data already."""
  import inspect  # pylint: disable=import-outside-toplevel
  try:
    params = inspect.signature(trainer.epoch).parameters
  except (TypeError, ValueError):
    return {}
  return {"check": False} if "check" in params else {}


def _key_bits(key) -> list[int]:
  """The bits of a typed or raw PRNG key, as ints (to seed NumPy)."""
  if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  return np.asarray(key).ravel().tolist()


def _same_key(a, b) -> bool:
  def data(k):
    k = jnp.asarray(k) if not isinstance(k, jax.Array) else k
    if jax.dtypes.issubdtype(k.dtype, jax.dtypes.prng_key):
      return np.asarray(jax.random.key_data(k)), str(jax.random.key_impl(k))
    return np.asarray(k), None

  (da, ia), (db, ib) = data(a), data(b)
  return ia == ib and da.shape == db.shape and bool(np.all(da == db))


def fit(key: jax.Array,
        trainer: contrastive.Trainer,
        params: R.RBM,
        data: jax.typing.ArrayLike,
        *,
        epochs: int,
        batch_size: int,
        validation: Optional[jax.typing.ArrayLike] = None,
        checkpoint_dir: Optional[Union[str, os.PathLike]] = None,
        progress: Union[bool, str] = True,
        eval_size: int = 1000,
        callback: Optional[Callable[[int, contrastive.TrainState, dict], Any]] = None,
        metadata: Optional[dict] = None) -> tuple[contrastive.TrainState, list[dict]]:
  """Trains an RBM for ``epochs`` epochs, monitoring, checkpointing and resuming.

  ``key`` is split into ``(key_init, key_eval, key_epochs)``: ``trainer.init(key_init,
  params)`` gives the first state, epoch ``e`` (0-based) runs ``trainer.epoch(fold_in(key_epochs,
  e), state, data, batch_size)``, and ``key_eval`` picks the fixed monitoring subsets.

  Args:
    key: PRNG key (typed or raw).
    trainer: a :class:`~jdbn.contrastive.Trainer`, e.g. ``contrastive.cd(optax.sgd(0.1))``.
    params: initial RBM params, or a :class:`~jdbn.models.centered.CenteredRBM` for
      :func:`jdbn.train.variants.centered` (ignored when resuming, except as the template the
      checkpoint must match).
    data: training data ``[n, n_visible]``, checked with :func:`jdbn.rbm.check_visible`.
    epochs: total number of epochs (including any already in the checkpoint).
    batch_size: examples per update, ``1 <= batch_size <= n``.
    validation: optional held-out data ``[m, n_visible]`` for the free-energy gap.
    checkpoint_dir: if given, after every epoch ``checkpoint.npz`` (train state, key, epoch,
      history; atomically) and ``metrics.json`` are written there, and a run finding a
      checkpoint there resumes from it.
    progress: show a tqdm bar over epochs (on stderr); a string is used as its description.
    eval_size: number of training (and validation) examples the metrics use.
    callback: ``callback(epoch, state, metrics)`` after each epoch (``epoch`` 1-based, after the
      checkpoint is written); a true return value stops training.
    metadata: extra JSON-serialisable settings stored in every checkpoint under ``"user"``.

  Returns:
    ``(state, history)``: the final :class:`~jdbn.contrastive.TrainState` and one dict of
    Python floats per epoch (``epoch``, ``loss``, ``recon_error``, ``grad_norm``,
    ``pseudo_likelihood``, ``free_energy_train``, ``free_energy_valid``, ``free_energy_gap``,
    ``seconds``; see the module docstring).

  Raises:
    ValueError / TypeError: bad data (NaN, inf, out of the visible units' range, wrong shape;
      the message names ``data`` or ``validation``), bad sizes, or a checkpoint that does not
      match ``params`` and ``trainer``.
    TrainingDiverged: an epoch produced non-finite params or loss; the last good checkpoint is
      left on disk untouched.
  """
  data, validation, epochs, batch_size, eval_size = _checked_args(
      params, data, validation, epochs, batch_size, eval_size)
  run = _start(key, trainer, params, data, batch_size, checkpoint_dir)
  k_pl, train_sub, valid_sub = _monitoring_subsets(run.key_eval, data, validation, eval_size)
  return loop.fit(run.state, _epoch_fn(trainer, run.key_epochs, data, batch_size), epochs=epochs,
                  start=run.epoch, history=run.history,
                  evaluate=lambda _, s: evaluate_metrics(k_pl, s.params, train_sub, valid_sub),
                  save=_saver(run, epochs, batch_size, metadata), checkpoint=run.ckpt_path,
                  progress=progress, callback=callback, postfix=_POSTFIX, advice=_ADVICE)


_POSTFIX = ("recon_error", "pseudo_likelihood", "free_energy_gap")
_ADVICE = "Try a lower learning rate (or more weight decay, smaller initial weights)"


def _checked_args(params, data, validation, epochs, batch_size, eval_size):
  """:func:`fit`'s checked arguments: ``(data, validation, epochs, batch_size, eval_size)``."""
  epochs = _check_int(epochs, "epochs")
  eval_size = _check_int(eval_size, "eval_size")
  data = _check_data(params, data, "data")
  batch_size = _check_int(batch_size, "batch_size")
  if batch_size > data.shape[0]:
    raise ValueError(f"batch_size={batch_size} is larger than the {data.shape[0]} training "
                     f"examples")
  if validation is not None:
    validation = _check_data(params, validation, "validation")
  return data, validation, epochs, batch_size, eval_size


class _Run(NamedTuple):
  """Where :func:`fit` starts: the state, epochs done and history (from the checkpoint when
  resuming), the keys in use, the run's settings and its checkpoint and metrics paths."""
  state: Any
  epoch: int
  history: list
  key: Any
  key_eval: Any
  key_epochs: Any
  settings: Optional[dict]
  ckpt_path: Optional[pathlib.Path]
  metrics_path: Optional[pathlib.Path]


def _start(key, trainer, params, data, batch_size, checkpoint_dir) -> _Run:
  """A fresh run from ``key``, or the run of the checkpoint in ``checkpoint_dir``."""
  key_init, key_eval, key_epochs = jax.random.split(key, 3)
  state = trainer.init(key_init, params)
  settings = run_settings(trainer, params, data, batch_size) if checkpoint_dir else None
  history: list[dict] = []
  start = 0
  ckpt_path = metrics_path = None
  if checkpoint_dir is not None:
    ckpt_path = pathlib.Path(checkpoint_dir) / CHECKPOINT_NAME
    metrics_path = pathlib.Path(checkpoint_dir) / METRICS_NAME
    if ckpt_path.exists():
      state, start, history, saved_key = _resume(ckpt_path, settings, state, key)
      if saved_key is not None:
        _, key_eval, key_epochs = jax.random.split(saved_key, 3)
        key = saved_key
  return _Run(state, start, history, key, key_eval, key_epochs, settings, ckpt_path,
              metrics_path)


def _resume(ckpt_path: pathlib.Path, settings: dict, state, key):
  """``(state, epochs_done, history, saved_key)`` from the checkpoint, ``saved_key`` being
  ``None`` when it is ``key``; refuses other settings and warns about other data or key."""
  saved = C.read_metadata(ckpt_path).get("settings") or {}
  if "data" in saved and saved["data"] != settings["data"]:
    # A warning, not an error: a DBN's upper layers legitimately resume on the features of
    # a lower layer that was trained further.
    warnings.warn(f"resuming from {ckpt_path}, which was trained on other data "
                  f"({saved['data']} -> {settings['data']}); continuing on the data given",
                  stacklevel=4)  # fit's caller
  changed = settings_diff({k: v for k, v in saved.items() if k != "data"}, settings)
  if changed:
    raise ValueError(f"cannot resume from {ckpt_path}: it was trained with other settings "
                     f"({'; '.join(changed)}). Use a new checkpoint_dir, or the same "
                     f"trainer, data and batch size (only epochs may change).")
  try:
    tree, meta = C.restore(ckpt_path, like={"state": state, "key": key})
  except C.CheckpointError:
    raise  # damaged: its message says what to do; the file is left as it is
  except ValueError as err:
    raise ValueError(f"cannot resume from {ckpt_path}: {err}. Use a new checkpoint_dir or "
                     f"the params and trainer that wrote it.") from err
  saved_key = None
  if not _same_key(tree["key"], key):
    warnings.warn(f"resuming from {ckpt_path}, which was written with a different key; "
                  f"continuing with the checkpoint's key", stacklevel=4)  # fit's caller
    saved_key = tree["key"]
  return tree["state"], int(meta["epoch"]), list(meta["history"]), saved_key


def _monitoring_subsets(key_eval, data, validation, eval_size):
  """``(key_pl, train_sub, valid_sub)``: the fixed monitoring subsets and the key of the
  pseudo-likelihood's units.

  The same examples every epoch, so the curves compare like with like; validation is cut to the
  training subset's size so that the gap is fair. (The subsets are drawn by NumPy seeded from the
  key: nothing to compile.)
  """
  k_subsets, k_pl = jax.random.split(key_eval)
  rng = np.random.default_rng(_key_bits(k_subsets))
  n_eval = min(eval_size, data.shape[0])
  train_sub = data[np.sort(rng.permutation(data.shape[0])[:n_eval])]
  valid_sub = None
  if validation is not None:
    m = min(n_eval, validation.shape[0])
    valid_sub = validation[np.sort(rng.permutation(validation.shape[0])[:m])]
  return k_pl, train_sub, valid_sub


def _epoch_fn(trainer, key_epochs, data, batch_size):
  """``(epoch, state) -> (state, row)`` for :func:`jdbn.train.loop.fit`: epoch ``e`` runs with
  ``fold_in(key_epochs, e)``."""

  def epoch_fn(epoch, state):
    state, info = trainer.epoch(jax.random.fold_in(key_epochs, epoch), state, data, batch_size,
                                **_checked_once(trainer))
    return state, {"loss": float(info.loss), "recon_error": float(info.recon_error),
                   "grad_norm": float(info.grad_norm)}

  return epoch_fn


def _saver(run: _Run, epochs: int, batch_size: int, metadata: Optional[dict]):
  """The ``save`` of :func:`jdbn.train.loop.fit` writing ``run``'s checkpoint and metrics
  (``None`` without a checkpoint folder)."""
  if run.ckpt_path is None:
    return None

  def save(done, state, history):
    meta = {"epoch": done, "epochs": epochs, "batch_size": batch_size, "history": history,
            "settings": run.settings, "user": metadata or {}}
    C.save(run.ckpt_path, {"state": state, "key": run.key}, metadata=meta)
    C.write_json(run.metrics_path, {"epochs_completed": done, "history": history,
                                    "user": metadata or {}})

  return save
