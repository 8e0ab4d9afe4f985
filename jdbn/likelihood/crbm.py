"""Conditional log-likelihoods of conditional RBMs: ``log p(y | x)`` per example, AIS and RAISE.

A CRBM (:mod:`jdbn.models.crbm`) has one partition function per context, ``Z(x)``, so its test
log-likelihood ``log p(y | x) = -F(y | x) - log Z(x)`` needs an estimate of ``log Z(x)`` for every
test example. For fixed ``x`` the CRBM *is* an RBM (:func:`jdbn.models.crbm.conditioned`), so
each example gets its own run of the RBM estimators of :mod:`jdbn.likelihood.rbm`, batched over
examples with ``vmap`` (one pair of matrix products per temperature for all examples and chains):

* AIS (:func:`jdbn.likelihood.rbm.ais`) from the base model ``p_0(y) ∝ exp(b(x) . y)``, the
  CRBM with its output-hidden weights off: the path ``beta = 0 -> 1`` only turns on ``W`` and
  the hidden biases, which is the part of the model that couples the outputs. Its
  ``log Z(x)`` estimate tends to be low, so ``log p`` tends to be *over*estimated; the
  per-example ``+/- 3`` standard-error bounds of the weights come with it.
* RAISE (:func:`jdbn.likelihood.rbm.raise_log_likelihood`, optional): the reverse chain from the
  example's own ``y``, a stochastic *lower* bound. The two sandwich ``log p(y | x)``.

For a model small enough to enumerate, :func:`jdbn.models.crbm.exact_log_conditional` is exact;
the tests check these estimators against it.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jdbn.likelihood import rbm as LR
from jdbn.likelihood.annealing import check_betas, default_betas
from jdbn.models import crbm as C
from jdbn.models import rbm as R

__all__ = ["ConditionalEstimate", "log_conditional"]

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


class ConditionalEstimate(NamedTuple):
  """The result of :func:`log_conditional`; nats, one entry per example.

  Attributes:
    log_p: ``[n]`` AIS estimates ``-F(y | x) - log Z_AIS(x)`` (tend to be high).
    log_p_lower: ``[n]`` ``-F(y | x) - log_z_upper(x)``, the AIS bound from the weights' spread.
    log_p_upper: ``[n]`` ``-F(y | x) - log_z_lower(x)`` (``+inf`` where the spread reaches 0).
    ess: ``[n]`` effective sample size of each example's AIS weights.
    raise_log_p: ``[n]`` RAISE estimates (stochastic lower bounds), or ``None`` when not run.
  """
  log_p: Array
  log_p_lower: Array
  log_p_upper: Array
  ess: Array
  raise_log_p: Optional[Array]

  @property
  def mean(self) -> Array:
    """Mean AIS estimate over the examples."""
    return jnp.mean(self.log_p)


def _example_rbm(params: C.CRBM, b: Array, c: Array) -> R.RBM:
  return R.RBM(params.W, b, c, params.log_sigma_v, params.log_sigma_h, params.visible,
               params.hidden)


def _chunk_estimate(key: Array, params: C.CRBM, v: Array, betas: Array, n_chains: int,
                    raise_chains: int):
  x, y = C.split(params, v)
  b, c = C.dynamic_biases(params, x)
  k_ais, k_raise = jax.random.split(key)
  keys_ais = jax.random.split(k_ais, v.shape[0])
  keys_raise = jax.random.split(k_raise, v.shape[0])

  def one(k1, k2, b_i, c_i, y_i):
    rbm = _example_rbm(params, b_i, c_i)
    res = LR._ais(k1, rbm, b_i, betas, n_chains)
    neg_f = -R.free_energy(rbm, y_i)
    rai = (LR._raise(k2, rbm, b_i, y_i[None], betas, raise_chains).log_p[0]
           if raise_chains else jnp.zeros((), y_i.dtype))
    return (neg_f - res.log_z, neg_f - res.log_z_upper, neg_f - res.log_z_lower, res.ess, rai)

  return jax.vmap(one)(keys_ais, keys_raise, b, c, y)


_chunk_jit = jax.jit(_chunk_estimate, static_argnames=("n_chains", "raise_chains"))


def log_conditional(key: Array,
                    params: C.CRBM,
                    v: ArrayLike,
                    *,
                    n_chains: int = 16,
                    raise_chains: int = 0,
                    betas: Optional[ArrayLike] = None,
                    chunk_size: int = 256) -> ConditionalEstimate:
  """Estimates ``log p(y | x)`` of every example by per-example AIS (and optionally RAISE).

  Args:
    key: PRNG key.
    params: CRBM params (output families as for :func:`jdbn.likelihood.rbm.ais`).
    v: ``[n, n_context + n_visible]`` joined examples ``[x | y]`` (:func:`jdbn.models.crbm.join`).
    n_chains: AIS runs per example (static).
    raise_chains: RAISE runs per example; 0 skips RAISE.
    betas: ``[K + 1]`` inverse temperatures from 0 to 1; default
      :func:`jdbn.likelihood.annealing.default_betas`. Per-example models are much closer to
      their base than a whole RBM is to the uniform one, so a few thousand usually suffice.
    chunk_size: examples per compiled call (memory: ``chunk_size * n_chains`` chains at once).

  Returns:
    A :class:`ConditionalEstimate` with one entry per example.

  Raises:
    ValueError: for bad counts, an empty or ill-shaped ``v``, or outputs outside the family.
  """
  for name, n, low in (("n_chains", n_chains, 1), ("raise_chains", raise_chains, 0),
                       ("chunk_size", chunk_size, 1)):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < low:
      raise ValueError(f"{name} must be an int >= {low}, got {n!r}")
  betas = default_betas() if betas is None else betas
  check_betas(betas)
  v = C.check_data(params, v, "v")
  if v.ndim != 2 or v.shape[0] == 0:
    raise ValueError(f"v must be a non-empty batch [n, {v.shape[-1]}], got {tuple(v.shape)}")
  betas = jnp.asarray(betas, params.W.dtype)
  parts = []
  for i, start in enumerate(range(0, v.shape[0], chunk_size)):
    parts.append(_chunk_jit(jax.random.fold_in(key, i), params, v[start:start + chunk_size],
                            betas, int(n_chains), int(raise_chains)))
  cols = [jnp.concatenate(col) for col in zip(*parts)]
  return ConditionalEstimate(*cols[:4], cols[4] if raise_chains else None)
