"""Many devices through ``jax.sharding``: data-parallel training, chain-parallel sampling and AIS.

Nothing here is a new mechanism. Arrays are placed on a :class:`jax.sharding.Mesh` with
:class:`jax.sharding.NamedSharding` and the same jitted functions run on them; XLA's SPMD
partitioner (GSPMD) splits the work and inserts the collectives:

* **Data-parallel CD/PCD.** Params and optimizer state are replicated; each batch is split over
  the devices (``[batch / n_devices, n_visible]`` per device); the gradient, a mean over the
  batch, is summed across devices by one all-reduce per update. PCD's persistent chains are split
  over the devices too. :meth:`jdbn.contrastive.Trainer.epoch` does this by itself whenever its
  ``data`` lives on a mesh; :func:`data_parallel` wraps a trainer so that it also places the state
  and data, and nothing else in the user's code changes.
* **Chain-parallel sampling and AIS** (:func:`sample_sharded`, :func:`ais_sharded`): the chains
  are split over the devices and each device runs its own slice; only AIS's final summary of the
  log weights is reduced across devices.

Random numbers. ``jax.random`` draws with the Threefry counter hash, and with
``jax_threefry_partitionable`` (the default in current JAX: ``True`` in JAX 0.10, which this is
tested with) the bits of element ``i`` depend on the key and ``i`` only, so each device computes the bits of its
own shard, with no communication, and a sharded run draws *the same numbers* as a run on one
device. Since the rows are split and never the contraction axis, each chain's arithmetic is the
same too: sampling and AIS give the one-device results, and training differs from them only by
the rounding of the cross-device gradient sum (the tests check both). On a JAX where it is
still ``False``, set ``jax.config.update("jax_threefry_partitionable", True)`` first: otherwise
random numbers may be generated whole on every device, or differ from the one-device ones.
Philox keys (``philox4x32``, ``philox2x32``) do not compile on several devices under JAX 0.10's
default Shardy partitioner; :func:`check_key` raises a ``ValueError`` saying what to do instead
(under GSPMD, ``jax_use_shardy_partitioner=False``, they work and match one device).

Meshes. :func:`make_mesh` makes a 1-D mesh whose axis is ``AxisType.Auto`` (GSPMD propagates the
shardings). ``jax.make_mesh`` makes ``Explicit`` axes by default in JAX 0.10 (shardings are part
of the types); the functions here, and ``Trainer.epoch``, take either kind.

Multi-host: call ``jax.distributed.initialize()`` first in every process; ``jax.devices()`` (and
so :func:`make_mesh`) then spans every host, and :func:`from_process_local` assembles a global
batch from each process's slice (``jax.make_array_from_process_local_data``).
"""

from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jdbn import gibbs, likelihood
from jdbn.train import contrastive
from jdbn import sharding as S
from jdbn.sharding import (batch_sharding, check_key, replicate,  # noqa: F401  (public here)
                           replicated)
from jdbn.models import rbm as R

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


def make_mesh(n_devices: Optional[int] = None,
              axis_name: str = "data",
              *,
              devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """A 1-D mesh over ``n_devices`` devices for data and chain parallelism.

  Args:
    n_devices: how many devices; default all of ``devices``.
    axis_name: the mesh axis's name.
    devices: the devices to take the first ``n_devices`` from; default ``jax.devices()`` (every
      device of every process after ``jax.distributed.initialize()``).

  Returns:
    A ``jax.sharding.Mesh`` of shape ``(n_devices,)`` with an ``AxisType.Auto`` axis.
  """
  devices = list(jax.devices() if devices is None else devices)
  n = len(devices) if n_devices is None else n_devices
  if not isinstance(n, int) or not 1 <= n <= len(devices):
    raise ValueError(f"n_devices must be an int in [1, {len(devices)}], got {n_devices!r}")
  return jax.make_mesh((n,), (axis_name,), axis_types=(AxisType.Auto,), devices=devices[:n])


def shard_batch(x: Any, mesh: Mesh) -> Any:
  """Splits the leading axis of every array in ``x`` over the devices of ``mesh``.

  Args:
    x: an array ``[n, ...]`` or a pytree of them; ``n`` must be a multiple of ``mesh.size``. Works
      on concrete arrays (``jax.device_put``) and inside ``jit`` (a sharding constraint).
    mesh: the mesh.

  Returns:
    ``x`` with each device holding ``[n / mesh.size, ...]``.
  """
  sharding = batch_sharding(mesh)

  def put(a):
    a = a if isinstance(a, (jax.Array, jax.core.Tracer)) else jnp.asarray(a)
    if a.ndim == 0 or a.shape[0] % mesh.size:
      raise ValueError(f"cannot split the leading axis of shape {tuple(a.shape)} over "
                       f"{mesh.size} devices: it must be a multiple of {mesh.size}")
    return S.place(a, sharding)

  return jax.tree.map(put, x)


def from_process_local(local: ArrayLike, mesh: Mesh) -> Array:
  """One global array made of every process's ``local`` rows, split over the leading axis.

  In a multi-host run (after ``jax.distributed.initialize()``) each process passes its own rows
  ``[n_local, ...]`` (the same ``n_local`` everywhere, a multiple of its local device count);
  the result is one global ``[n_processes * n_local, ...]`` array whose shards stay on the
  devices of the process that loaded them (``jax.make_array_from_process_local_data``). With one
  process it is :func:`shard_batch`.
  """
  return jax.make_array_from_process_local_data(batch_sharding(mesh), np.asarray(local))


def shard_train_state(state: contrastive.TrainState, mesh: Mesh) -> contrastive.TrainState:
  """Lays a CD/PCD :class:`~jdbn.contrastive.TrainState` out for data parallelism.

  Params, optimizer state and step are replicated; PCD's chains ``[n_chains, ...]`` are split over
  the devices (``n_chains`` must be a multiple of ``mesh.size``).
  """
  chains = None if state.chains is None else shard_batch(state.chains, mesh)
  return state.replace(params=replicate(state.params, mesh),
                       opt_state=replicate(state.opt_state, mesh),
                       step=replicate(state.step, mesh),
                       chains=chains)


def data_parallel(trainer: contrastive.Trainer,
                  mesh: Optional[Mesh]) -> contrastive.Trainer:
  """The same trainer, run data-parallel over ``mesh`` (returned unchanged if ``mesh`` is None).

  ``init`` lays the state out with :func:`shard_train_state`; ``update`` splits its batch over the
  devices (``batch`` a multiple of ``mesh.size``; it still composes under ``jit``); ``epoch``
  replicates ``data`` (a full copy per device, any ``n``, no communication for the shuffle) so that
  :meth:`~jdbn.contrastive.Trainer.epoch` splits every batch over the devices (``batch_size`` a
  multiple of ``mesh.size``). Same key, same batches and the same random numbers as on one
  device; the results differ only by the rounding of the cross-device gradient sum::

      mesh = parallel.make_mesh()                       # all devices
      trainer = parallel.data_parallel(contrastive.pcd(optax.sgd(0.05), n_chains=128), mesh)
      state = trainer.init(key, params)
      state, info = trainer.epoch(key, state, train_x, batch_size=128)
  """
  if mesh is None:
    return trainer

  def init(key: Array, params: R.RBM) -> contrastive.TrainState:
    check_key(key, mesh)
    return shard_train_state(trainer.init(key, params), mesh)

  def update(key: Array, state: contrastive.TrainState, batch: ArrayLike):
    check_key(key, mesh)
    return trainer.update(key, shard_train_state(state, mesh), shard_batch(batch, mesh))

  def epoch(key: Array, state: contrastive.TrainState, data: ArrayLike, batch_size: int, *,
            metrics: bool = True, check: bool = True):
    check_key(key, mesh)
    return trainer.epoch(key, shard_train_state(state, mesh), replicate(data, mesh), batch_size,
                         metrics=metrics, check=check)

  return contrastive.Trainer(init, update, epoch, trainer.config)


def _sharded_jit(fun, mesh: Mesh, out_specs):
  """``jit(fun)`` whose outputs have the PartitionSpecs ``out_specs`` on ``mesh``.

  The output shardings are propagated backwards by GSPMD into the ``lax.scan`` that computes them
  (on ``Explicit`` meshes through ``jax.sharding.auto_axes``), so the chains are split from their
  first draw on. Returns ``call(*args)``.
  """
  if S.is_explicit(mesh):
    jitted = jax.jit(jax.sharding.auto_axes(fun, out_sharding=out_specs))

    def call(*args):
      with jax.set_mesh(mesh):
        return jitted(*args)

    return call
  out = jax.tree.map(lambda s: None if s is None else NamedSharding(mesh, s), out_specs,
                     is_leaf=lambda s: isinstance(s, P) or s is None)
  return jax.jit(fun, out_shardings=out)


@functools.lru_cache(maxsize=64)
def _sample_fn(mesh: Mesh, n_chains: int, n_steps: int, thin: Optional[int]):
  def fun(key, params, v0, clamp):
    return gibbs.sample(key, params, n_chains, n_steps, v0=v0, clamp=clamp, thin=thin)

  trace_spec = None if thin is None else P(None, S.leading_axes(mesh))
  return _sharded_jit(fun, mesh, (P(S.leading_axes(mesh)), trace_spec))


def sample_sharded(key: Array,
                   params: R.RBM,
                   n_chains: int,
                   n_steps: int,
                   mesh: Mesh,
                   *,
                   v0: Optional[ArrayLike] = None,
                   clamp: Optional[ArrayLike] = None,
                   thin: Optional[int] = None) -> tuple[Array, Optional[Array]]:
  """:func:`jdbn.gibbs.sample` with the chains split over the devices of ``mesh``.

  Same arguments and the same result as ``gibbs.sample(key, params, n_chains, n_steps, ...)``
  (the same random numbers; see the module docstring); each device runs
  ``n_chains / mesh.size`` chains, with no communication.

  Returns:
    ``(v, trace)``: ``v [n_chains, n_visible]`` split over the devices along its first axis;
    ``trace [n_steps // thin, n_chains, n_visible]`` split along its second axis, or ``None``.
  """
  if not isinstance(n_chains, int) or n_chains < 1 or n_chains % mesh.size:
    raise ValueError(f"n_chains must be a positive multiple of the {mesh.size} devices, "
                     f"got {n_chains!r}")
  check_key(key, mesh)
  if v0 is not None:
    v0 = shard_batch(jnp.asarray(v0, params.W.dtype), mesh)
  if clamp is not None:
    clamp = jnp.asarray(clamp)
    clamp = shard_batch(clamp, mesh) if clamp.ndim == 2 else replicate(clamp, mesh)
  return _sample_fn(mesh, n_chains, n_steps, thin)(replicate(key, mesh), replicate(params, mesh), v0, clamp)


@functools.lru_cache(maxsize=64)
def _ais_fn(mesh: Mesh, n_chains: int):
  def fun(key, params, base_b, betas):
    return likelihood.ais(key, params, n_chains=n_chains, betas=betas, base_b=base_b)

  rep = P()
  return _sharded_jit(fun, mesh,
                      likelihood.AISResult(rep, rep, rep, rep, P(S.leading_axes(mesh)), rep))


def ais_sharded(key: Array,
                params: R.RBM,
                mesh: Mesh,
                *,
                n_chains: int = 100,
                betas: Optional[ArrayLike] = None,
                base_b: Optional[ArrayLike] = None,
                data: Optional[ArrayLike] = None) -> likelihood.AISResult:
  """:func:`jdbn.likelihood.ais` with the annealing chains split over the devices of ``mesh``.

  Same arguments and result as ``likelihood.ais(key, params, n_chains=..., ...)`` (the same random
  numbers, so the same ``log_w``); each device anneals ``n_chains / mesh.size`` chains through
  every temperature with no communication, and only the final summary (means of the weights)
  is reduced across devices. ``n_chains`` must be a multiple of ``mesh.size``.

  Returns:
    A :class:`jdbn.likelihood.AISResult`, its scalars replicated and ``log_w`` split over the
    devices.
  """
  if not isinstance(n_chains, int) or n_chains < 1 or n_chains % mesh.size:
    raise ValueError(f"n_chains must be a positive multiple of the {mesh.size} devices, "
                     f"got {n_chains!r}")
  if base_b is not None and data is not None:
    raise ValueError("give base_b or data, not both")
  check_key(key, mesh)
  betas = likelihood.default_betas() if betas is None else np.asarray(betas)
  likelihood.check_betas(betas)  # pylint: disable=protected-access
  if data is not None:
    base_b = likelihood.base_rate_biases(params, data)
  base_b = jnp.zeros((params.n_visible,), params.W.dtype) if base_b is None else base_b
  base_b = jnp.asarray(base_b, params.W.dtype)
  if base_b.shape != (params.n_visible,):
    raise ValueError(f"base_b must have shape [{params.n_visible}], got {tuple(base_b.shape)}")
  args = (key, params, base_b, jnp.asarray(betas, params.W.dtype))
  return _ais_fn(mesh, n_chains)(*replicate(args, mesh))
