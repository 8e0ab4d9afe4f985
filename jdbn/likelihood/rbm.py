"""AIS and RAISE for RBMs: the fast path, two matrix products a temperature.

An RBM assigns ``p(v) = exp(-F(v)) / Z``. :func:`ais` estimates ``log Z`` by annealed importance
sampling from a base-rate model (Neal 2001; Salakhutdinov & Murray 2008); its ``Z`` estimate is
unbiased, so ``log Z`` is underestimated in expectation (Jensen) and ``-F(v) - log Z_AIS`` tends
to *over*estimate ``log p(v)``; :func:`estimate_log_likelihood` wraps it for a test set.
:func:`raise_log_likelihood` is the reverse estimator RAISE (Burda, Grosse & Salakhutdinov 2015),
a stochastic *lower* bound, so that AIS and RAISE sandwich the log-likelihood.

Annealing path. With base-rate visible biases ``a`` (``base_b``), the intermediate distributions
are, for ``0 = beta_0 < ... < beta_K = 1`` (Salakhutdinov & Murray 2008, section 4.1),

    log f_beta(v) = -(1 - beta) E_v(v; a) - beta E_v(v; b) + log_partition_h(beta s_v(v) W, beta c)

i.e. the visible marginal of the RBM with weights ``beta W``, visible biases
``(1 - beta) a + beta b`` and hidden biases ``beta c``, which is :func:`jdbn.rbm.interpolate`
(the RBM's tempered copy; for Gaussian visible units the two differ by a constant in ``v`` that
vanishes at both ends). At ``beta = 0`` it is the base model with zero weights, whose ``log Z_0 =
log_partition_v(0; a) + log_partition_h(0; 0)`` is closed form; at ``beta = 1`` it is ``-F(v)``.
Transitions are block-Gibbs sweeps ``v -> h -> v'`` of the tempered RBM. The field
``u = s_v(v) W`` does not depend on beta, so each temperature costs two matrix products: ``u``
once (for both ``f_beta_k(v)`` and ``f_beta_{k-1}(v)`` and for sampling ``h``), and ``s_h(h) W^T``
once. (:mod:`jdbn.likelihood.annealing` is the same estimator for any block model.)
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from jdbn import units as U
from jdbn.likelihood.annealing import AISResult, check_betas, default_betas, summarise
from jdbn.models import rbm as R

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


def base_rate_biases(params: R.RBM, data: ArrayLike, *, eps: float = 1e-3) -> Array:
  """Visible biases of the base-rate model: zero weights, each unit matching the data's marginal.

  Salakhutdinov & Murray (2008), section 4.1: Bernoulli units get ``log(p / (1 - p))`` of the mean
  ``p`` (clipped to ``[eps, 1 - eps]``), Softmax groups ``log p`` (``p`` clipped below at ``eps``),
  Gaussian units the mean (their sigma stays the model's), ReLU units the mean. Any base model
  gives an unbiased AIS estimate; a closer one gives a smaller variance.

  Args:
    params: RBM params (for the visible family).
    data: ``[n, n_visible]`` (usually the training set).
    eps: clipping of Bernoulli and Softmax marginals.

  Returns:
    ``[n_visible]`` biases.
  """
  data = jnp.asarray(data, params.W.dtype)
  if not isinstance(data, jax.core.Tracer):
    data = R.check_visible(params, data, "data")
    if data.size == 0:
      raise ValueError("data is empty: base rates need at least one example")
  return _base_from_mean(params.visible, jnp.mean(data.reshape(-1, params.n_visible), axis=0),
                         eps)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _base_from_mean(units: U.Units, mean: Array, eps: float) -> Array:
  return units.base_rate(mean, eps)


def base_log_z(params: R.RBM, base_b: ArrayLike) -> Array:
  """``log Z_0`` of the base model (weights and hidden biases zero, visible biases ``base_b``).

  The layers are independent, so ``log Z_0 = log_partition_v(0; base_b, sigma_v) +
  log_partition_h(0; 0, sigma_h)`` (``n_visible log 2``-style sums for binary units).
  """
  dtype = params.W.dtype
  base_b = jnp.asarray(base_b, dtype)
  return (params.visible.log_partition(jnp.zeros((params.n_visible,), dtype), base_b,
                                       params.log_sigma_v) +
          params.hidden.log_partition(jnp.zeros((params.n_hidden,), dtype),
                                      jnp.zeros((params.n_hidden,), dtype), params.log_sigma_h))


def _visible_field(params: R.RBM, v: Array) -> Array:
  """``u = s_v(v) W``, the beta-independent hidden field: ``[..., n_hidden]`` (one GEMM)."""
  return params.visible.scaled(v, params.log_sigma_v) @ params.W


def _log_ratio(params: R.RBM, base_b: Array, v: Array, u: Array, beta_from: Array,
               beta_to: Array) -> Array:
  """``log f_beta_to(v) - log f_beta_from(v)`` from the field ``u = s_v(v) W``: ``-> [...]``.

  The visible part is ``(beta_to - beta_from) (E_v(v; a) - E_v(v; b))``, exact to rounding of a
  small number; the hidden part is differenced unit by unit
  (:meth:`jdbn.units.Units.log_partition_terms`).
  """
  vis = params.visible
  d_vis = (vis.energy(v, base_b, params.log_sigma_v) - vis.energy(v, params.b, params.log_sigma_v))
  hid, c, sig = params.hidden, params.c, params.log_sigma_h
  d_hid = (hid.log_partition_terms(beta_to * u, beta_to * c, sig) -
           hid.log_partition_terms(beta_from * u, beta_from * c, sig))
  return (beta_to - beta_from) * d_vis + jnp.sum(d_hid, axis=-1)


def _transition(key: Array, params: R.RBM, base_b: Array, beta: Array,
                u: Array) -> tuple[Array, Array]:
  """One block-Gibbs sweep of ``rbm.interpolate(params, base_b, beta)`` from the field ``u``.

  Samples ``h ~ p_beta(h | v)`` from ``beta u``, then ``v' ~ p_beta(v | h)``; returns ``(v', u')``
  with ``u' = s_v(v') W``. Two GEMMs. The keys are split as in :func:`jdbn.gibbs.sweep`.
  """
  key_h, key_v = jax.random.split(key)
  h = params.hidden.sample(key_h, beta * u, beta * params.c, params.log_sigma_h)
  g = params.hidden.scaled(h, params.log_sigma_h) @ params.W.T
  b_beta = (1 - beta) * base_b + beta * params.b
  v = params.visible.sample(key_v, beta * g, b_beta, params.log_sigma_v)
  # Materialise v once: otherwise XLA:CPU fuses the whole draw (Philox/Threefry rounds included)
  # into each of v's three consumers, the next GEMM and the two visible energies of the weight.
  v = jax.lax.optimization_barrier(v)
  return v, _visible_field(params, v)


def _anneal(key: Array, params: R.RBM, base_b: Array, v: Array, log_w: Array,
            betas: Array) -> Array:
  """Runs ``v`` through ``T_{s_0}, ..., T_{s_{M-1}}`` accumulating ``log f_{s_{i+1}} - log f_{s_i}``.

  For ``i = 0 .. M-1`` (``M = len(betas) - 1``): ``v <- T_{s_i}(v)``, then ``log_w += log
  f_{s_{i+1}}(v) - log f_{s_i}(v)``, all in one ``lax.scan``. The sum is accumulated with Kahan
  compensation, so 14,500 float32 additions lose nothing measurable.

  Args:
    key: PRNG key.
    params, base_b: the model and the base model's visible biases.
    v: ``[n_chains, n_visible]`` starting states.
    log_w: ``[n_chains]`` starting log weights.
    betas: ``[M + 1]`` the temperatures ``s_0 .. s_M``.

  Returns:
    ``[n_chains]`` log weights.
  """
  n_steps = betas.shape[0] - 1

  def body(carry, xs):
    u, total, comp = carry
    k, beta, beta_next = xs
    v, u = _transition(k, params, base_b, beta, u)
    # Kahan summation: comp holds the low-order bits lost by the previous addition.
    y = _log_ratio(params, base_b, v, u, beta, beta_next) - comp
    t = total + y
    comp = (t - total) - y
    return (u, t, comp), None

  init = (_visible_field(params, v), log_w, jnp.zeros_like(log_w))
  (_, total, comp), _ = jax.lax.scan(body, init,
                                     (jax.random.split(key, n_steps), betas[:-1], betas[1:]))
  return total - comp


@functools.partial(jax.jit, static_argnames="n_chains")
def _ais(key: Array, params: R.RBM, base_b: Array, betas: Array, n_chains: int) -> AISResult:
  dtype = params.W.dtype
  # The sweep at beta_0 = 0 ignores its starting state (the tempered weights are zero), so it
  # draws the exact base samples v_1 ~ p_0 that AIS starts from.
  v = jnp.zeros((n_chains, params.n_visible), dtype)
  log_w = _anneal(key, params, base_b, v, jnp.zeros((n_chains,), dtype), betas)
  return summarise(log_w, base_log_z(params, base_b))


def _resolve_base(params: R.RBM, base_b: Optional[ArrayLike], data: Optional[ArrayLike]) -> Array:
  if base_b is not None and data is not None:
    raise ValueError("give base_b or data, not both")
  if data is not None:
    return base_rate_biases(params, data)
  if base_b is None:
    return jnp.zeros((params.n_visible,), params.W.dtype)
  base_b = jnp.asarray(base_b, params.W.dtype)
  if base_b.shape != (params.n_visible,):
    raise ValueError(f"base_b must have shape [{params.n_visible}], got {tuple(base_b.shape)}")
  return base_b


def ais(key: Array,
        params: R.RBM,
        *,
        n_chains: int = 100,
        betas: Optional[ArrayLike] = None,
        base_b: Optional[ArrayLike] = None,
        data: Optional[ArrayLike] = None) -> AISResult:
  """Annealed importance sampling estimate of ``log Z`` (Neal 2001; Salakhutdinov & Murray 2008).

  ``n_chains`` independent runs start at exact samples ``v_1 ~ p_0`` of the base model and move
  through ``T_{beta_1}, ..., T_{beta_{K-1}}`` (block-Gibbs sweeps of the tempered RBM, see the
  module docstring); each carries the weight

      log w = sum_{k=1..K} log f_{beta_k}(v_k) - log f_{beta_{k-1}}(v_k),

  with ``E[w] = Z / Z_0``. The run is one jitted ``lax.scan`` over temperatures with the chains
  batched as ``[n_chains, n_visible]``: two GEMMs per temperature, the weight summed with Kahan
  compensation in the params' dtype.

  Args:
    key: PRNG key.
    params: RBM params (any unit families whose self energy is affine in the bias up to a
      constant: Bernoulli, Gaussian with fixed or learned sigma, Softmax, ReLU, Joint).
    n_chains: number of independent runs (static).
    betas: ``[K + 1]`` non-decreasing inverse temperatures from 0 to 1; default
      :func:`default_betas` (14,500 steps).
    base_b: ``[n_visible]`` visible biases of the base model; default zeros (uniform binary
      units, ``N(0, sigma^2)`` Gaussian units). Mutually exclusive with ``data``.
    data: ``[n, n_visible]`` data (usually the training set) to take base rates from, see
      :func:`base_rate_biases`.

  Returns:
    An :class:`AISResult` (scalars, and ``log_w: [n_chains]``).

  Example::

    res = ais(key, params, data=train_x)
    test_ll = jnp.mean(log_likelihood(params, test_x, res.log_z))
  """
  if not isinstance(n_chains, int) or n_chains < 1:
    raise ValueError(f"n_chains must be a positive int, got {n_chains!r}")
  betas = default_betas() if betas is None else betas
  check_betas(betas)
  base = _resolve_base(params, base_b, data)
  return _ais(key, params, base, jnp.asarray(betas, params.W.dtype), n_chains)


class LogLikelihoodEstimate(NamedTuple):
  """The result of :func:`estimate_log_likelihood`; nats per example.

  Attributes:
    mean: ``mean_i(-F(v_i)) - log Z_AIS``, the AIS estimate of the mean test log-probability (it
      tends to overestimate, since ``log Z_AIS`` tends to underestimate ``log Z``).
    lower: ``mean_i(-F(v_i)) - log_z_upper``.
    upper: ``mean_i(-F(v_i)) - log_z_lower`` (``+inf`` if AIS's lower bound is ``-inf``).
    log_p: ``[n]`` per-example estimates ``-F(v_i) - log Z_AIS``.
    ais: the :class:`AISResult` behind them.
  """
  mean: Array
  lower: Array
  upper: Array
  log_p: Array
  ais: AISResult


def estimate_log_likelihood(key: Array, params: R.RBM, data: ArrayLike, /,
                            **ais_kwargs) -> LogLikelihoodEstimate:
  """Mean log-probability of ``data`` with ``log Z`` from :func:`ais`, with its ±3 se bounds.

  Args:
    key: PRNG key for AIS.
    params: RBM params.
    data: ``[n, n_visible]`` examples to score (e.g. the test set), positional.
    **ais_kwargs: passed to :func:`ais` (``n_chains``, ``betas``, ``base_b``, ``data``). Give
      ``data=train_x`` for training-set base rates, as ``estimate_log_likelihood(key, params,
      test_x, data=train_x)``; if neither ``base_b`` nor ``data`` is given, the base rates are
      taken from the scored examples (any base model keeps AIS unbiased).

  Returns:
    A :class:`LogLikelihoodEstimate`.
  """
  if isinstance(data, jax.core.Tracer):
    data = jnp.asarray(data, params.W.dtype)
  else:
    data = R.check_visible(params, data, "data")
    if data.size == 0:
      raise ValueError("data is empty: there is nothing to score")
  if "base_b" not in ais_kwargs and "data" not in ais_kwargs:
    ais_kwargs["data"] = data
  res = ais(key, params, **ais_kwargs)
  neg_f = -R.free_energy(params, data)
  mean_neg_f = jnp.mean(neg_f)
  return LogLikelihoodEstimate(
      mean=mean_neg_f - res.log_z,
      lower=mean_neg_f - res.log_z_upper,
      upper=mean_neg_f - res.log_z_lower,
      log_p=neg_f - res.log_z,
      ais=res,
  )


# ----------------------------------------------------------------------------- RAISE


class RAISEResult(NamedTuple):
  """The result of :func:`raise_log_likelihood`; nats.

  Attributes:
    log_p: ``[batch]`` per-example estimates ``log mean_m w_m``; ``E[w] = p_ann(v)``, so each is a
      stochastic lower bound on ``log p_ann(v)`` (Jensen).
    log_w: ``[batch, n_chains_per_example]`` the log weights.
    mean: mean of ``log_p`` over the batch.
  """
  log_p: Array
  log_w: Array
  mean: Array


@functools.partial(jax.jit, static_argnames="n_chains")
def _raise(key: Array, params: R.RBM, base_b: Array, v: Array, betas: Array,
           n_chains: int) -> RAISEResult:
  batch = v.shape[0]
  x = jnp.repeat(v, n_chains, axis=0)  # [batch * n_chains, n_visible], example-major
  log_w = -R.free_energy(params, x) - base_log_z(params, base_b)
  log_w = _anneal(key, params, base_b, x, log_w, betas[::-1]).reshape(batch, n_chains)
  log_p = jax.nn.logsumexp(log_w, axis=-1) - jnp.log(jnp.asarray(n_chains, log_w.dtype))
  return RAISEResult(log_p, log_w, jnp.mean(log_p))


def raise_log_likelihood(key: Array,
                         params: R.RBM,
                         v: ArrayLike,
                         *,
                         n_chains_per_example: int = 1,
                         betas: Optional[ArrayLike] = None,
                         base_b: Optional[ArrayLike] = None,
                         data: Optional[ArrayLike] = None) -> RAISEResult:
  """Reverse AIS estimator (RAISE) of ``log p(v)`` (Burda, Grosse & Salakhutdinov 2015).

  The forward annealing chain of :func:`ais` defines a normalised generative model, the
  *annealing model* ``p_ann(v_0, ..., v_K) = p_0(v_0) prod_{k=1..K} T_k(v_k | v_{k-1})`` whose last
  state is the observation ``v = v_K``; as the schedule grows ``p_ann(v) -> p(v)``. RAISE
  estimates ``p_ann(v)`` by importance sampling with the reversed chain as proposal: start at the
  data ``v_K = v``, draw ``v_{k-1} ~ T_k(. | v_k)`` for ``k = K .. 1`` (``T_k`` is the sweep
  ``v -> h -> v'`` at ``beta_k``, reversible with respect to ``f_beta_k``, so it is its own
  reversal; the first sweep starts from ``h ~ p(h | v)`` under the full model). The weight

      w = exp(-F(v)) / Z_0 * prod_{k=0..K-1} f_{beta_k}(v_k) / f_{beta_{k+1}}(v_k)

  has ``E[w] = p_ann(v)`` exactly, so ``log w`` (and ``log mean_m w_m`` over chains) is a stochastic
  lower bound on ``log p_ann(v)``; averaged over test data this errs low, where AIS errs high. The
  bound is on the annealing model: with too short a schedule it is loose but still conservative
  for data the model fits (``E_p log p_ann <= E_p log p``), never optimistic about ``p_ann``.
  Cost: one annealing run per chain per example, two GEMMs per temperature.

  Args:
    key: PRNG key.
    params: RBM params.
    v: ``[batch, n_visible]`` examples.
    n_chains_per_example: reverse chains per example (static); more chains tighten the bound.
    betas: ``[K + 1]`` inverse temperatures from 0 to 1, default :func:`default_betas`.
    base_b: base-model visible biases (default zeros); or
    data: ``[n, n_visible]`` training data for base rates (see :func:`base_rate_biases`).

  Returns:
    A :class:`RAISEResult`.
  """
  if not isinstance(n_chains_per_example, int) or n_chains_per_example < 1:
    raise ValueError(f"n_chains_per_example must be a positive int, got {n_chains_per_example!r}")
  betas = default_betas() if betas is None else betas
  check_betas(betas)
  base = _resolve_base(params, base_b, data)
  if isinstance(v, jax.core.Tracer):
    v = jnp.asarray(v, params.W.dtype)
  else:
    v = R.check_visible(params, v, "v")
  if v.ndim != 2:
    raise ValueError(f"v must have shape [batch, {params.n_visible}], got {tuple(v.shape)}")
  if v.shape[0] == 0:
    raise ValueError("v is empty: there is nothing to score")
  return _raise(key, params, base, v, jnp.asarray(betas, params.W.dtype), n_chains_per_example)
