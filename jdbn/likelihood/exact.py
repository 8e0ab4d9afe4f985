"""Exact partition functions and likelihoods of small RBMs, and the pseudo-likelihood.

:func:`exact_log_z` sums ``exp(-F)`` over every state of the smaller enumerable layer (tests, and
the 20-hidden-unit models of Salakhutdinov & Murray 2008); :func:`log_likelihood` turns any
``log Z`` into ``log p(v)``; :func:`pseudo_likelihood` is Besag's (1975) cheap stand-in. (Tiny
models of any kind: :func:`jdbn.models.base.exact_log_z`, which enumerates the joint states.)
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import jax
import jax.numpy as jnp

from jdbn import units as U
from jdbn.models import rbm as R

Array = jax.Array

#: Largest number of states :func:`exact_log_z` will sum over.
MAX_ENUMERATION_STATES = 2**26


@functools.partial(jax.jit, static_argnames=("layer", "chunk_size"))
def _exact_log_z(params: R.RBM, layer: str, chunk_size: int) -> Array:
  units, n = ((params.hidden, params.n_hidden) if layer == "hidden" else
              (params.visible, params.n_visible))
  n_states = units.n_states(n)
  neg_f = ((lambda s: -R.free_energy_hidden(params, s)) if layer == "hidden" else
           (lambda s: -R.free_energy(params, s)))
  size = min(chunk_size, n_states)
  n_chunks = math.ceil(n_states / size)

  def chunk(i):
    idx = i * size + jnp.arange(size, dtype=jnp.int32)
    vals = neg_f(units.states_at(jnp.minimum(idx, n_states - 1), n, params.W.dtype))
    return jax.nn.logsumexp(jnp.where(idx < n_states, vals, -jnp.inf))

  return jax.nn.logsumexp(jax.lax.map(chunk, jnp.arange(n_chunks, dtype=jnp.int32)))


def exact_log_z(params: R.RBM, *, layer: Optional[str] = None, chunk_size: int = 2**14) -> Array:
  """Exact ``log Z`` by summing over every state of one layer, the other marginalised.

  ``log Z = logsumexp_h -F(h)`` (hidden layer enumerated, :func:`jdbn.rbm.free_energy_hidden`) or
  ``logsumexp_v -F(v)`` (visible layer enumerated, :func:`jdbn.rbm.free_energy`). States are
  decoded from their index chunk by chunk inside one jitted ``lax.map``, so memory is
  ``O(chunk_size * (n_visible + n_hidden))`` however many states there are. Measured on a
  2-core Xeon: a 784 x 20 model (2^20 hidden states) takes about 8 CPU-seconds, a 64 x 25 model
  (2^25 states) about 20.

  Args:
    params: RBM params; the enumerated layer must be Bernoulli, Softmax or a Joint of those.
    layer: ``"hidden"`` or ``"visible"``; by default the enumerable layer with fewer states.
    chunk_size: states per chunk.

  Returns:
    Scalar ``log Z``.

  Raises:
    ValueError: if no layer is enumerable or the enumerable layer has more than
      :data:`MAX_ENUMERATION_STATES` states.
  """
  if layer not in (None, "hidden", "visible"):
    raise ValueError(f"layer must be 'hidden', 'visible' or None, got {layer!r}")
  if not isinstance(chunk_size, int) or chunk_size < 1:
    raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
  candidates = []
  for name, units, n in (("hidden", params.hidden, params.n_hidden),
                         ("visible", params.visible, params.n_visible)):
    if units.enumerable and (layer is None or layer == name):
      candidates.append((units.n_states(n), name))
  if not candidates:
    raise ValueError(f"cannot enumerate the {layer or 'visible or hidden'} layer of an RBM with "
                     f"{type(params.visible).__name__} visible and "
                     f"{type(params.hidden).__name__} hidden units")
  n_states, name = min(candidates)
  if n_states > MAX_ENUMERATION_STATES:
    raise ValueError(f"exact log Z would sum over {n_states:,} states of the {name} layer "
                     f"(at most {MAX_ENUMERATION_STATES:,}); use ais() for a model this large")
  return _exact_log_z(params, name, chunk_size)


def log_likelihood(params: R.RBM, v: Array, log_z: Array) -> Array:
  """``log p(v) = -F(v) - log Z`` in nats: ``[..., n_visible] -> [...]``."""
  return -R.free_energy(params, v) - log_z


def pseudo_likelihood(key: Optional[Array], params: R.RBM, v: Array) -> Array:
  """Log pseudo-likelihood ``sum_i log p(v_i | v_-i)`` of Bernoulli visible states (Besag 1975).

  With a key, the stochastic estimate ``n_visible * log p(v_i | v_-i)`` for one random unit
  ``i`` per example (as scikit-learn's ``BernoulliRBM.score_samples``); with ``key=None`` the
  exact sum over all units (``n_visible`` free energies per example). For Bernoulli units
  ``p(v_i | v_-i) = sigmoid(F(v with v_i flipped) - F(v))``, flipping ``v_i -> 1 - v_i``.

  Args:
    key: PRNG key or None.
    params: RBM with Bernoulli visible units.
    v: ``[batch, n_visible]``.

  Returns:
    ``[batch]`` log pseudo-likelihoods in nats.
  """
  if not isinstance(params.visible, U.Bernoulli):
    raise ValueError("pseudo_likelihood needs Bernoulli visible units, got "
                     f"{type(params.visible).__name__}")
  v = jnp.asarray(v, params.W.dtype)
  f = R.free_energy(params, v)
  n = params.n_visible
  if key is not None:
    i = jax.random.randint(key, v.shape[:-1], 0, n)
    flip = jax.nn.one_hot(i, n, dtype=v.dtype)
    return n * jax.nn.log_sigmoid(R.free_energy(params, v + flip * (1 - 2 * v)) - f)

  def one(i):
    flip = jax.nn.one_hot(i, n, dtype=v.dtype)
    return jax.nn.log_sigmoid(R.free_energy(params, v + flip * (1 - 2 * v)) - f)

  return jnp.sum(jax.lax.map(one, jnp.arange(n)), axis=0)
