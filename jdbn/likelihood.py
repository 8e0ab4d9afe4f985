"""Partition functions and likelihoods: exact enumeration and pseudo-likelihood.

``p(v) = exp(-F(v)) / Z`` with ``log Z = log sum_v exp(-F(v)) = log sum_h exp(-F(h))``; for
small models the sum over the states of the smaller enumerable layer is exact.
"""

from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp

from jdbn import rbm as R
from jdbn import units as U

Array = jax.Array

#: Largest number of states :func:`exact_log_z` will sum over.
MAX_ENUMERATION_STATES = 2**26


def _bits(idx: Array, n: int, dtype) -> Array:
  """Binary expansions of integer indices: ``[m] -> [m, n]`` (most significant bit first)."""
  shifts = jnp.arange(n - 1, -1, -1, dtype=jnp.uint32)
  return ((idx[:, None].astype(jnp.uint32) >> shifts) & 1).astype(dtype)


def exact_log_z(params: R.RBM, *, layer: Optional[str] = None, chunk_size: int = 2**14) -> Array:
  """Exact ``log Z`` by summing over every state of one layer, the other marginalised.

  Args:
    params: RBM params; the enumerated layer must be Bernoulli, Softmax or a Joint of those.
    layer: ``"hidden"`` or ``"visible"``; by default the enumerable layer with fewer states.
    chunk_size: states per chunk; memory is ``O(chunk_size * max(n_visible, n_hidden))`` however
      many states there are (up to :data:`MAX_ENUMERATION_STATES`).

  Returns:
    Scalar ``log Z``.

  Raises:
    ValueError: if no layer is enumerable or the enumerable layer has too many states.
  """
  candidates = []
  for name, units, n in (("hidden", params.hidden, params.n_hidden),
                         ("visible", params.visible, params.n_visible)):
    if units.enumerable and (layer is None or layer == name):
      candidates.append((units.n_states(n), name, units, n))
  if layer not in (None, "hidden", "visible"):
    raise ValueError(f"layer must be 'hidden', 'visible' or None, got {layer!r}")
  if not candidates:
    raise ValueError(f"cannot enumerate the {layer or 'visible or hidden'} layer of an RBM with "
                     f"{type(params.visible).__name__} visible and "
                     f"{type(params.hidden).__name__} hidden units")
  n_states, name, units, n = min(candidates, key=lambda t: t[0])
  if n_states > MAX_ENUMERATION_STATES:
    raise ValueError(f"exact log Z would sum over {n_states:,} states of the {name} layer "
                     f"(at most {MAX_ENUMERATION_STATES:,}); use AIS for a model this large")
  neg_f = ((lambda s: -R.free_energy_hidden(params, s)) if name == "hidden" else
           (lambda s: -R.free_energy(params, s)))
  dtype = params.W.dtype
  if isinstance(units, U.Bernoulli):
    n_chunks = math.ceil(n_states / chunk_size)
    size = min(chunk_size, n_states)

    def chunk(i):
      idx = i * size + jnp.arange(size, dtype=jnp.int32)
      vals = neg_f(_bits(jnp.minimum(idx, n_states - 1), n, dtype))
      return jax.nn.logsumexp(jnp.where(idx < n_states, vals, -jnp.inf))

    return jax.nn.logsumexp(jax.lax.map(chunk, jnp.arange(n_chunks)))
  states = jnp.asarray(units.states(n), dtype)
  return jax.nn.logsumexp(
      jax.lax.map(lambda s: jax.nn.logsumexp(neg_f(s)),
                  _pad_chunks(states, chunk_size)))


def _pad_chunks(states: Array, chunk_size: int) -> Array:
  """Splits ``[m, n]`` into ``[chunks, chunk_size, n]``, padding by repeating the first state.

  Padding repeats would be counted twice, so chunks are sized to divide ``m`` exactly.
  """
  m = states.shape[0]
  size = math.gcd(m, chunk_size) if m > chunk_size else m
  return states.reshape((m // size, size) + states.shape[1:])


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
