"""``log Z`` of a small DBM by enumeration: every state of the odd layers, the even layers
summed out. Public as :func:`jdbn.models.dbm.exact_log_z`; a module of its own so that the model
module stays one concept (the model and its inference)."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from jdbn.models import base

Array = jax.Array


def exact_log_z(model: base.BlockModel, *, chunk_size: int = 2**12) -> Array:
  """``log Z`` of a small DBM: every state of the odd layers, the even layers summed out.

  ``log Z = logsumexp_{h_odd} -F(h_odd)`` with ``F`` the free energy of the odd layers given the
  even ones summed analytically (:func:`jdbn.models.base.free_energy` of the even group), decoded
  from the state index chunk by chunk in one jitted ``lax.map``. A 64-12-6 model costs ``2^12``
  free energies. Raises ``ValueError`` for non-enumerable odd layers or more than ``2^26`` states.
  """
  odd = model.schedule[0]
  radices = []
  for l in odd:
    if not model.units[l].enumerable:
      raise ValueError(f"layer h{l} has {type(model.units[l]).__name__} units, which cannot be "
                       f"enumerated")
    radices.append(model.units[l].n_states(model.sizes[l]))
  total = math.prod(radices)
  if total > 2**26:
    raise ValueError(f"the odd layers have {total:,} states, more than {2**26:,} to enumerate; use "
                     f"jdbn.likelihood.ais")
  return _exact_log_z(model, int(min(chunk_size, total)))


def _odd_states(model: base.BlockModel, idx: Array) -> tuple:
  """Every layer's state for the odd-layer state indices ``idx`` (even layers zero)."""
  odd = model.schedule[0]
  dtype = model.biases[0].dtype
  states = [jnp.zeros(idx.shape + (n,), dtype) for n in model.sizes]
  rest = idx
  for l in reversed(odd):
    r = model.units[l].n_states(model.sizes[l])
    states[l] = model.units[l].states_at(rest % r, model.sizes[l], dtype)
    rest = rest // r
  return tuple(states)


@functools.partial(jax.jit, static_argnames="chunk")
def _exact_log_z(model: base.BlockModel, chunk: int) -> Array:
  total = math.prod(model.units[l].n_states(model.sizes[l]) for l in model.schedule[0])

  def one(i):
    idx = i * chunk + jnp.arange(chunk, dtype=jnp.int32)
    states = _odd_states(model, jnp.minimum(idx, total - 1))
    vals = -base.free_energy(model, states, model.schedule[1])
    return jax.nn.logsumexp(jnp.where(idx < total, vals, -jnp.inf))

  return jax.nn.logsumexp(jax.lax.map(one, jnp.arange(math.ceil(total / chunk), dtype=jnp.int32)))
