"""Where arrays live on a mesh of devices: the layout helpers that training and sampling share.

:mod:`jdbn.parallel` builds the user-facing data- and chain-parallel functions on these;
:mod:`jdbn.contrastive` uses them to split an epoch's batches when its data lives on a mesh.
Nothing here imports another jdbn module.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

Array = jax.Array

__all__ = ["batch_sharding", "check_key", "constrain", "epoch_batch_sharding", "replicate",
           "replicated", "leading_axes", "is_explicit", "place"]


def leading_axes(mesh: Mesh):
  """The leading-axis entry of a PartitionSpec splitting over every axis of ``mesh``."""
  names = tuple(mesh.axis_names)
  return names[0] if len(names) == 1 else names


def is_explicit(mesh: Mesh) -> bool:
  return any(t == AxisType.Explicit for t in mesh.axis_types)


def place(x: Any, sharding: NamedSharding) -> Any:
  """``device_put`` for concrete arrays; inside ``jit`` a sharding constraint."""
  if isinstance(x, jax.core.Tracer):
    if is_explicit(sharding.mesh):
      return jax.sharding.reshard(x, sharding)
    return jax.lax.with_sharding_constraint(x, sharding)
  return jax.device_put(x, sharding)


@functools.lru_cache(maxsize=32)
def _key_impl_shards(impl: str, mesh: Mesh, shardy: bool) -> Optional[str]:
  """``None`` if keys of ``impl`` draw on ``mesh``; else the compiler's message.

  Probed by compiling one sharded draw: JAX 0.10's Shardy partitioner cannot lower the ``mulhi``
  of the Philox implementations ("Unable to convert MHLO to StableHLO"), and the probe notices
  when a JAX release fixes that.
  """
  del shardy  # part of the cache key: the answer depends on the partitioner in force
  key = jax.random.key(0, impl=impl)
  fn = jax.jit(lambda k: jax.random.bits(k, (2 * mesh.size,)),
               out_shardings=NamedSharding(mesh, P(leading_axes(mesh))))
  try:
    fn.lower(replicate(key, mesh)).compile()
  except Exception as e:  # pylint: disable=broad-except  (XLA raises JaxRuntimeError)
    return str(e).splitlines()[0]
  return None


def check_key(key: Array, mesh: Mesh) -> None:
  """Raises a ``ValueError`` with what to do if ``key``'s PRNG cannot draw on ``mesh``.

  With Shardy, JAX's default partitioner (``jax_use_shardy_partitioner``), ``philox4x32`` and
  ``philox2x32`` keys fail to compile on more than one device in JAX 0.10; ``threefry2x32`` and
  ``rbg`` keys work, and so do Philox keys after
  ``jax.config.update("jax_use_shardy_partitioner", False)`` (the GSPMD partitioner, with the
  same numbers as on one device). Every function of :mod:`jdbn.parallel` calls it, and so does
  :meth:`jdbn.contrastive.Trainer.epoch` for data on a mesh.
  """
  if mesh.size <= 1 or not jnp.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
    return
  impl = str(jax.random.key_impl(key))
  if not impl.startswith("philox"):
    return
  shardy = bool(jax.config.jax_use_shardy_partitioner)
  error = _key_impl_shards(impl, mesh, shardy)
  if error is not None:
    raise ValueError(
        f"{impl} keys cannot draw random numbers on a mesh of {mesh.size} devices with this JAX "
        f"{'and the Shardy partitioner ' if shardy else ''}({error}). Use a threefry2x32 key "
        "(jax.random.key(seed)) or an rbg one"
        + (", or jax.config.update('jax_use_shardy_partitioner', False) at the start of the "
           "program, under which Philox keys work on a mesh" if shardy else "") + ".")


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """``NamedSharding`` splitting an array's leading axis over every axis of ``mesh``."""
  return NamedSharding(mesh, P(leading_axes(mesh)))


def replicated(mesh: Mesh) -> NamedSharding:
  """``NamedSharding`` with a full copy on every device of ``mesh``."""
  return NamedSharding(mesh, P())


def replicate(tree: Any, mesh: Mesh) -> Any:
  """A full copy of every array in ``tree`` on every device of ``mesh`` (params, optimizer state)."""
  sharding = replicated(mesh)
  return jax.tree.map(lambda a: place(a, sharding), tree)


def epoch_batch_sharding(data: Array, batch_size: int) -> Optional[jax.sharding.NamedSharding]:
  """How :meth:`Trainer.epoch` lays out ``[n_batches, batch_size, ...]`` when ``data`` lives on a
  mesh of several devices (a ``NamedSharding``): each batch is split over the mesh axes that
  split ``data``'s first axis or, if ``data`` is replicated, over every mesh axis. ``None`` (no
  constraint) for data on one device."""
  if isinstance(data, jax.core.Tracer):  # under an outer jit: known on Explicit meshes only
    sharding = jax.typeof(data).sharding
  else:
    sharding = getattr(data, "sharding", None)
  if not isinstance(sharding, jax.sharding.NamedSharding) or sharding.mesh.size <= 1:
    return None
  spec = tuple(sharding.spec) + (None,) * (data.ndim - len(sharding.spec))
  if spec[0] is not None:
    axes = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
  elif all(a is None for a in spec):
    axes = tuple(sharding.mesh.axis_names)
  else:
    return None
  n = math.prod(sharding.mesh.shape[a] for a in axes)
  if batch_size % n:
    raise ValueError(f"the data's mesh splits each batch over {n} devices, so batch_size must be "
                     f"a multiple of {n}, got {batch_size}")
  return jax.sharding.NamedSharding(sharding.mesh,
                                    P(None, axes[0] if len(axes) == 1 else axes, *spec[1:]))


def constrain(x: Array, sharding: jax.sharding.NamedSharding) -> Array:
  """Lays ``x`` out as ``sharding`` inside ``jit``: ``reshard`` on an all-``Explicit`` mesh
  (where ``with_sharding_constraint`` only asserts), ``with_sharding_constraint`` otherwise."""
  if all(t == jax.sharding.AxisType.Explicit for t in sharding.mesh.axis_types):
    return jax.sharding.reshard(x, sharding)
  return jax.lax.with_sharding_constraint(x, sharding)
