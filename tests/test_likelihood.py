"""Exact log Z, AIS, RAISE and log-likelihood estimates, checked against enumeration and integrals.

Tolerances come from the statistics of each estimator (standard errors of means of importance
weights), never from tuning seeds. AIS schedules here are short (tens to a thousand temperatures)
because the models are tiny; the full 14,500-temperature schedule runs once, in the float32 drift
test. Each distinct (model structure, n_chains, schedule length) compiles once, which dominates the
runtime, so tests share configurations where they can.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import integrate

from jdbn import contrastive
from jdbn import data as D
from jdbn import likelihood as L
from jdbn import rbm as R
from jdbn import units as U

JOINT = U.Joint(((U.Bernoulli(), 3), (U.Softmax(3), 6)))  # 8 * 9 = 72 visible states


def _model(seed, visible, n_v, hidden, n_h, scale=1.0):
  """Random params from NumPy (a jax.random draw per new shape would compile a kernel each)."""
  rng = np.random.default_rng(seed)
  p = R.RBM(
      W=jnp.asarray(scale * rng.standard_normal((n_v, n_h)), jnp.float32),
      b=jnp.asarray(0.5 * rng.standard_normal(n_v), jnp.float32),
      c=jnp.asarray(0.5 * rng.standard_normal(n_h), jnp.float32),
      log_sigma_v=(jnp.asarray(0.3 * rng.standard_normal(n_v), jnp.float32)
                   if visible.has_sigma else None),
      visible=visible,
      hidden=hidden)
  return p


def _brute_log_z(p):
  """logsumexp of -E(v, h) over every joint state of both (enumerable) layers."""
  vs = jnp.asarray(p.visible.states(p.n_visible))
  hs = jnp.asarray(p.hidden.states(p.n_hidden))
  energy = jax.jit(R.energy)  # one compile instead of many small eager ones
  return float(jax.nn.logsumexp(-energy(p, vs[:, None, :], hs[None, :, :])))


# ----------------------------------------------------------------------------- exact log Z


@pytest.mark.parametrize("visible,n_v,hidden,n_h", [
    (U.Bernoulli(), 5, U.Bernoulli(), 4),
    (JOINT, 9, U.Bernoulli(), 3),
    (U.Bernoulli(), 4, U.Softmax(2), 6),
    (JOINT, 9, JOINT, 9),
])
def test_exact_log_z_matches_brute_force_over_both_layers(visible, n_v, hidden, n_h):
  p = _model(0, visible, n_v, hidden, n_h)
  brute = _brute_log_z(p)
  for layer in ("visible", "hidden", None):
    np.testing.assert_allclose(float(L.exact_log_z(p, layer=layer)), brute, rtol=1e-6, atol=1e-5)


def test_exact_log_z_chunks_do_not_change_the_sum():
  # 2^14 hidden states in chunks that do not divide the count (the last one is masked).
  p = _model(1, U.Bernoulli(), 6, U.Bernoulli(), 14)
  whole = float(L.exact_log_z(p, layer="hidden"))
  np.testing.assert_allclose(float(L.exact_log_z(p, layer="hidden", chunk_size=1000)), whole,
                             rtol=1e-6)
  np.testing.assert_allclose(float(L.exact_log_z(p, layer="visible")), whole, rtol=1e-6)


def test_states_decoding_matches_units_states():
  for units, n in ((U.Bernoulli(), 5), (U.Softmax(3), 6), (JOINT, 9)):
    idx = jnp.arange(units.n_states(n), dtype=jnp.int32)
    np.testing.assert_array_equal(units.states_at(idx, n, jnp.float32), units.states(n))


@pytest.mark.parametrize("learn_sigma", [False, True])
def test_exact_log_z_gaussian_visible_matches_integral(learn_sigma):
  """Hidden layer enumerated in closed form vs a numerical integral of exp(-F(v)) over R^2."""
  p = _model(2, U.Gaussian(learn_sigma), 2, U.Bernoulli(), 3)
  W, b, c = (np.asarray(x, np.float64) for x in (p.W, p.b, p.c))
  sigma = np.exp(np.asarray(p.log_sigma_v, np.float64)) if learn_sigma else np.ones(2)

  def f(v1, v0):  # exp(-F(v)), F(v) = sum (v - b)^2 / 2 sigma^2 - sum_j softplus(c + (v/sigma) W)
    v = np.array([v0, v1])
    return np.exp(-np.sum((v - b)**2 / (2 * sigma**2)) + np.logaddexp(0, c + (v / sigma) @ W).sum())

  z, _ = integrate.dblquad(f, -15, 15, -15, 15, epsabs=1e-10, epsrel=1e-9)
  np.testing.assert_allclose(float(L.exact_log_z(p)), np.log(z), rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="cannot enumerate the visible"):
    L.exact_log_z(p, layer="visible")


def test_exact_log_z_relu_hidden_matches_integral():
  """Visible layer enumerated vs sum over v of a numerical integral over h >= 0 of exp(-E)."""
  p = _model(3, U.Bernoulli(), 4, U.ReLU(), 2)
  W, b, c = (np.asarray(x, np.float64) for x in (p.W, p.b, p.c))
  z = 0.0
  for v in U.Bernoulli().states(4).astype(np.float64):
    # E(v, h) = -b.v + sum_j (h_j^2 / 2 - c_j h_j) - v W h on h >= 0.
    f = lambda h1, h0, v=v: np.exp(b @ v - (h0 * h0 + h1 * h1) / 2 +
                                     (c + v @ W) @ np.array([h0, h1]))
    part, _ = integrate.dblquad(f, 0, 20, 0, 20, epsabs=1e-11, epsrel=1e-9)
    z += part
  np.testing.assert_allclose(float(L.exact_log_z(p)), np.log(z), rtol=1e-5, atol=1e-5)


def test_exact_log_z_errors():
  p = _model(4, U.Bernoulli(), 30, U.Bernoulli(), 27)
  with pytest.raises(ValueError, match="use ais"):
    L.exact_log_z(p)
  with pytest.raises(ValueError, match="layer must be"):
    L.exact_log_z(p, layer="both")
  q = _model(4, U.Gaussian(), 3, U.ReLU(), 2)
  with pytest.raises(ValueError, match="cannot enumerate"):
    L.exact_log_z(q)


# ----------------------------------------------------------------------------- AIS


def test_default_betas():
  b = L.default_betas()
  assert b.shape == (14501,) and b[0] == 0 and b[-1] == 1  # 14,500 annealing steps
  steps = np.diff(b.astype(np.float64))
  np.testing.assert_allclose(steps[:500], 1e-3, rtol=1e-3)
  np.testing.assert_allclose(steps[500:4500], 1e-4, rtol=1e-2)
  np.testing.assert_allclose(steps[4500:], 1e-5, rtol=1e-1)  # float32 spacing near 1 is 6e-8


def test_ais_is_exact_without_weights_and_has_no_float32_drift():
  """W = 0 and base = model's visible biases: every weight is Z / Z_0 exactly.

  ``log w = sum_j softplus(c_j) - n_h log 2`` (~800 nats here) is reached through 14,500 float32
  differences of hidden log-partitions; summing naively drifts by ~1e-2, here it must stay 1e-3.
  """
  n_v, n_h = 16, 500
  rng = np.random.default_rng(5)
  b = jnp.asarray(2 * rng.standard_normal(n_v), jnp.float32)
  c = jnp.asarray(5 * rng.standard_normal(n_h), jnp.float32)
  p = R.RBM(jnp.zeros((n_v, n_h)), b, c)
  exact = float(np.logaddexp(0, np.float64(b)).sum() + np.logaddexp(0, np.float64(c)).sum())
  res = L.ais(jax.random.key(6), p, n_chains=10, base_b=b)
  np.testing.assert_allclose(float(res.log_z), exact, atol=1e-3, rtol=0)
  assert np.ptp(np.asarray(res.log_w)) < 1e-3
  np.testing.assert_allclose(float(res.ess), 10, rtol=1e-4)
  np.testing.assert_allclose(float(res.log_z_lower), exact, atol=1e-3)
  np.testing.assert_allclose(float(res.log_z_upper), exact, atol=1e-3)


@functools.cache
def _digits_model():
  """A 64 x 20 RBM trained with CD-1 on the embedded digits, binarised at 0.5."""
  ds = D.load_digits()
  x = (ds.x > 0.5).astype(np.float32)
  train, test = x[:1500], x[1500:]
  key = jax.random.key(7)
  params = R.init(key, 64, 20, data=train)
  trainer = contrastive.cd(optax.sgd(0.1, momentum=0.5), k=1)
  state = trainer.init(key, params)
  for epoch in range(10):
    state, _ = trainer.epoch(jax.random.fold_in(key, epoch), state, train, batch_size=50)
  params = state.params
  return params, train, test, float(L.exact_log_z(params))


def test_ais_matches_exact_on_trained_digits_model():
  params, train, _, exact = _digits_model()
  res = L.ais(jax.random.key(8), params, n_chains=100, betas=np.linspace(0, 1, 1001), data=train)
  assert float(res.log_z_lower) <= exact <= float(res.log_z_upper)
  assert abs(float(res.log_z) - exact) < 0.1
  assert 50 < float(res.ess) <= 100


def test_ais_error_shrinks_with_more_temperatures():
  """E[log w] <= log Z - log Z_0 with a gap (a KL divergence) that shrinks as K grows.

  The gap and the spread of log w are means over 100 chains, so these comparisons are robust; the
  estimate's own error then shrinks too.
  """
  params, train, _, exact = _digits_model()
  gaps, spreads, errors = [], [], []
  for k in (30, 1000):
    res = L.ais(jax.random.key(9), params, n_chains=100, betas=np.linspace(0, 1, k + 1),
                data=train)
    log_w = np.asarray(res.log_w, np.float64)
    gaps.append(exact - float(res.log_z_base) - log_w.mean())
    spreads.append(log_w.std())
    errors.append(abs(float(res.log_z) - exact))
  se = spreads[1] / 10
  assert gaps[1] > -3 * se  # the Jensen gap is non-negative in expectation
  assert gaps[1] < gaps[0] / 5 and spreads[1] < spreads[0] / 3
  assert errors[1] < 0.1 and errors[1] < errors[0] + 0.05


MIXED = U.Joint(((U.Bernoulli(), 2), (U.Gaussian(), 2), (U.Softmax(3), 3)))


@pytest.mark.parametrize("name,visible,n_v,hidden,n_h", [
    ("gaussian-learned-sigma", U.Gaussian(learn_sigma=True), 3, U.Bernoulli(), 8),
    ("joint-bernoulli-gaussian-softmax", MIXED, 7, U.Bernoulli(), 8),
    ("relu-hidden", U.Bernoulli(), 10, U.ReLU(), 4),
])
def test_ais_matches_exact_for_unit_families(name, visible, n_v, hidden, n_h):
  p = _model(10, visible, n_v, hidden, n_h)
  exact = float(L.exact_log_z(p))
  res = L.ais(jax.random.key(11), p, n_chains=100, betas=np.linspace(0, 1, 301))  # zero base
  assert float(res.log_z_lower) <= exact <= float(res.log_z_upper), name
  assert abs(float(res.log_z) - exact) < 0.1, name


def test_core_relu_sampler_is_finite():
  x = U.ReLU().sample(jax.random.key(0), jnp.full((10_000, 1), -6.0), jnp.zeros(1))
  assert float(jnp.max(x)) < 10


def test_ais_transition_is_gibbs_sweep_of_interpolated_model():
  from jdbn import gibbs
  p = _model(12, U.Gaussian(learn_sigma=True), 5, U.Bernoulli(), 7)
  base = jnp.linspace(-1, 1, 5)
  v = jnp.asarray(np.random.default_rng(13).standard_normal((200, 5)), jnp.float32)

  @jax.jit
  def both(key, beta):
    mine = L.rbm._transition(key, p, base, beta, L.rbm._visible_field(p, v))
    ref = gibbs.sweep(key, R.interpolate(p, base, beta), gibbs.ChainState(v, v[:, :0]))
    return mine, ref.v

  for beta in (0.0, 0.3, 1.0):
    (v_new, u_new), v_ref = both(jax.random.key(14), jnp.float32(beta))
    np.testing.assert_allclose(v_new, v_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(u_new, R.hidden_field(p, v_new), rtol=1e-5, atol=1e-5)


def test_per_unit_log_partition_terms_sum_to_log_partition():
  rng = np.random.default_rng(17)
  families = [(U.Bernoulli(), 6), (U.Gaussian(), 6), (U.Gaussian(learn_sigma=True), 6),
              (U.ReLU(), 6), (U.Softmax(3), 6), (MIXED, 7),
              (U.Joint(((U.Gaussian(learn_sigma=True), 2), (U.Softmax(2), 4))), 6)]
  for units, n in families:
    phi, bias, sig = (jnp.asarray(rng.standard_normal(s), jnp.float32) for s in ((4, n), n, n))
    sig = sig if units.has_sigma else None
    terms, total = jax.jit(lambda *a, u=units: (u.log_partition_terms(*a), u.log_partition(*a)))(
        phi, bias, sig)
    assert terms.shape[0] == 4 and terms.ndim == 2
    np.testing.assert_allclose(terms.sum(-1), total, rtol=1e-5, atol=1e-5)


def test_ais_log_ratio_matches_interpolated_free_energies():
  """log f_b(v) - log f_a(v) equals F_a(v) - F_b(v) of rbm.interpolate, up to a constant in v."""
  for visible in (U.Bernoulli(), U.Gaussian(learn_sigma=True), JOINT):
    n_v = 9 if visible is JOINT else 4
    p = _model(15, visible, n_v, U.Bernoulli(), 6)
    base = 0.3 * jnp.arange(n_v, dtype=jnp.float32) / n_v
    v = jnp.asarray(visible.states(n_v)[:8] if visible.enumerable else
                    np.random.default_rng(16).standard_normal((8, n_v)), jnp.float32)

    @jax.jit
    def both(p, v, base):
      mine = L.rbm._log_ratio(p, base, v, L.rbm._visible_field(p, v), 0.25, 0.75)
      return mine, (R.free_energy(R.interpolate(p, base, 0.25), v) -
                    R.free_energy(R.interpolate(p, base, 0.75), v))

    mine, ref = both(p, v, base)
    np.testing.assert_allclose(mine - mine[0], ref - ref[0], rtol=1e-5, atol=1e-5)


def test_ais_jit_and_determinism():
  p = _model(10, MIXED, 7, U.Bernoulli(), 8)  # the joint config above: already compiled
  kwargs = {"n_chains": 100, "betas": np.linspace(0, 1, 301)}
  a = L.ais(jax.random.key(11), p, **kwargs)
  b = L.ais(jax.random.key(11), p, **kwargs)
  np.testing.assert_array_equal(a.log_w, b.log_w)
  c = L.ais(jax.random.key(12), p, **kwargs)
  assert not np.allclose(a.log_w, c.log_w)
  d = jax.jit(lambda key, params: L.ais(key, params, **kwargs))(jax.random.key(11), p)
  # The same program inside an outer jit; XLA may fuse differently, and a chain whose uniform lands
  # within an ulp of a sampling probability may then take another path, so compare chain by chain.
  same = np.abs(np.asarray(a.log_w) - np.asarray(d.log_w)) < 1e-4
  assert same.mean() >= 0.95
  assert abs(float(a.log_z) - float(d.log_z)) < 0.05


def test_ais_argument_errors():
  p = _model(0, U.Bernoulli(), 5, U.Bernoulli(), 4)
  with pytest.raises(ValueError, match="from 0 to 1"):
    L.ais(jax.random.key(0), p, betas=np.linspace(0.1, 1, 10))
  with pytest.raises(ValueError, match="non-decreasing"):
    L.ais(jax.random.key(0), p, betas=np.array([0, 0.5, 0.2, 1.0]))
  with pytest.raises(ValueError, match="base_b or data"):
    L.ais(jax.random.key(0), p, base_b=jnp.zeros(5), data=jnp.zeros((3, 5)))
  with pytest.raises(ValueError, match="base_b must have shape"):
    L.ais(jax.random.key(0), p, base_b=jnp.zeros(4))
  with pytest.raises(ValueError, match="n_chains"):
    L.ais(jax.random.key(0), p, n_chains=0)
  with pytest.raises(ValueError, match="Bernoulli"):
    L.ais(jax.random.key(0), p, data=2 * jnp.ones((3, 5)))


def test_base_rates_and_base_log_z():
  p = _model(0, JOINT, 9, U.Bernoulli(), 4)
  x = np.array([[1, 0, 1, 1, 0, 0, 0, 0, 1], [1, 1, 0, 0, 1, 0, 1, 0, 0]], np.float32)
  base = np.asarray(L.base_rate_biases(p, x))
  np.testing.assert_allclose(base[:3], [np.log(0.999 / 0.001), 0, 0], atol=1e-4)
  np.testing.assert_allclose(base[3:], np.log([0.5, 0.5, 1e-3, 0.5, 1e-3, 0.5]), atol=1e-5)
  # log Z_0 by enumeration of the zero-weight model.
  p0 = p.replace(W=jnp.zeros_like(p.W), b=jnp.asarray(base), c=jnp.zeros_like(p.c))
  np.testing.assert_allclose(float(jax.jit(L.base_log_z)(p, base)), _brute_log_z(p0), rtol=1e-6)


def test_estimate_log_likelihood_brackets_exact():
  params, train, test, exact_log_z = _digits_model()
  est = L.estimate_log_likelihood(jax.random.key(8), params, test, n_chains=100,
                                  betas=np.linspace(0, 1, 1001), data=train)
  exact = float(jnp.mean(L.log_likelihood(params, test, exact_log_z)))
  assert float(est.lower) <= exact <= float(est.upper)
  assert abs(float(est.mean) - exact) < 0.1
  assert est.log_p.shape == (test.shape[0],)
  np.testing.assert_allclose(float(jnp.mean(est.log_p)), float(est.mean), rtol=1e-5)


# ----------------------------------------------------------------------------- RAISE


def _annealing_model_probs(p, base, betas):
  """Exact p_ann(v) = p_0 T_{beta_1} ... T_{beta_K} over the enumerated visible states (float64)."""
  vs = np.asarray(p.visible.states(p.n_visible), np.float64)
  hs = np.asarray(p.hidden.states(p.n_hidden), np.float64)
  W, b, c, base = (np.asarray(x, np.float64) for x in (p.W, p.b, p.c, base))

  def bern(logits, states):  # [n_cond, n] logits, [n_states, n] -> [n_cond, n_states]
    return np.exp(states @ logits.T - np.logaddexp(0, logits).sum(1)[None, :]).T

  prob = bern(base[None, :], vs)[0]
  for beta in betas[1:]:
    p_h = bern(beta * (vs @ W + c), hs)  # [n_vs, n_hs]
    p_v = bern((1 - beta) * base + beta * (hs @ W.T + b), vs)  # [n_hs, n_vs]
    prob = prob @ (p_h @ p_v)
  return vs, prob


def test_raise_is_unbiased_for_the_annealing_model():
  """E[w] = p_ann(v) exactly (checked against p_ann by matrix products), so E[log w] <= log p_ann."""
  p = _model(20, U.Bernoulli(), 5, U.Bernoulli(), 3, scale=1.5)
  base = 0.5 * jnp.ones((5,))
  betas = np.linspace(0, 1, 11)
  vs, p_ann = _annealing_model_probs(p, base, betas)
  m = 2000
  res = L.raise_log_likelihood(jax.random.key(21), p, vs, n_chains_per_example=m, betas=betas,
                               base_b=base)
  w = np.exp(np.asarray(res.log_w, np.float64))
  z = (w.mean(1) - p_ann) / (w.std(1) / np.sqrt(m))
  assert np.all(np.abs(z) < 4.5), z
  log_w = np.asarray(res.log_w, np.float64)
  assert np.all(log_w.mean(1) <= np.log(p_ann) + 3 * log_w.std(1) / np.sqrt(m))
  # A short schedule is a different (normalised) model, not p itself.
  exact = np.asarray(L.log_likelihood(p, vs, L.exact_log_z(p)))
  np.testing.assert_allclose(p_ann.sum(), 1, rtol=1e-9)
  assert np.max(np.abs(np.log(p_ann) - exact)) > 0.01


def test_raise_is_conservative_and_tight_with_a_long_schedule():
  """On data drawn from p, mean RAISE <= mean log p (in expectation), and close for K = 1000."""
  p = _model(22, U.Bernoulli(), 10, U.Bernoulli(), 6, scale=1.0)
  vs = np.asarray(U.Bernoulli().states(10))
  exact = np.asarray(L.log_likelihood(p, vs, L.exact_log_z(p)), np.float64)
  rng = np.random.default_rng(0)
  idx = rng.choice(len(vs), size=400, p=np.exp(exact) / np.exp(exact).sum())
  res = L.raise_log_likelihood(jax.random.key(23), p, vs[idx], betas=np.linspace(0, 1, 1001))
  diff = np.asarray(res.log_p, np.float64) - exact[idx]
  se = diff.std() / np.sqrt(len(diff))
  assert diff.mean() <= 3 * se
  assert diff.mean() > -0.05
  np.testing.assert_allclose(float(res.mean), np.asarray(res.log_p).mean(), rtol=1e-6)


# ----------------------------------------------------------------------------- any block model


def _block_models():
  """Tiny models of three kinds with couplings strong enough that Z is far from the base's."""
  from jdbn.models import bm, dbm  # pylint: disable=import-outside-toplevel
  rbm = _model(20, U.Bernoulli(), 6, U.Bernoulli(), 4)
  deep = dbm.init(jax.random.key(21), (4, 3, 3), weight_scale=1.0)
  deep = deep.replace(biases=tuple(0.5 * jax.random.normal(jax.random.key(22 + i), b.shape)
                                   for i, b in enumerate(deep.biases)))
  lateral = bm.init(jax.random.key(25), 8, weight_scale=0.7)
  lateral = lateral.replace(b=0.5 * jax.random.normal(jax.random.key(26), (8,)))
  return {"rbm": rbm, "dbm 4-3-3": deep, "bm 8 dense": lateral}


@pytest.mark.parametrize("name,summed", [("rbm", "first"), ("dbm 4-3-3", "first"),
                                         ("dbm 4-3-3", None), ("bm 8 dense", "first")])
def test_generic_ais_brackets_exact_log_z(name, summed):
  """AIS over the tempered copy with the generic Gibbs kernel, for an RBM, a DBM-shaped chain
  (odd layers summed out, or the joint energy) and a fully connected BM (one colour class summed),
  against enumeration of every joint state: the exact value lies within the ±3 se bounds."""
  from jdbn.models import base  # pylint: disable=import-outside-toplevel
  model = _block_models()[name]
  exact = float(base.exact_log_z(model))
  kwargs = {} if summed == "first" else {"summed": summed}
  res = L.ais(jax.random.key(30), model, n_chains=200, betas=np.linspace(0, 1, 501),
              base_biases={0: 0.1 * jnp.ones(model.blocks[0].size)}, **kwargs)
  assert float(res.log_z_lower) <= exact <= float(res.log_z_upper), (name, exact, res.log_z)
  assert float(res.log_z_upper) - float(res.log_z_lower) < 0.5


def test_generic_ais_of_an_rbm_agrees_with_the_fast_path():
  """The generic path through ``RBM.tempered`` and ``samplers.gibbs`` weighs the same path as the
  RBM fast path (hidden layer summed, visible base rates): same ``log Z_0``, both bracket exact."""
  p = _block_models()["rbm"]
  x = (jax.random.uniform(jax.random.key(31), (50, 6)) < 0.3).astype(jnp.float32)
  base_b = L.base_rate_biases(p, x)
  bb = L.base_rates(p, {"v": x})
  np.testing.assert_allclose(bb[0], base_b, rtol=1e-6)
  assert bb[1] is None
  np.testing.assert_allclose(float(L.model_base_log_z(p, bb)), float(L.base_log_z(p, base_b)),
                             rtol=1e-6)
  exact = float(L.exact_log_z(p))
  betas = np.linspace(0, 1, 501)
  fast = L.ais(jax.random.key(32), p, n_chains=200, betas=betas, data=x)
  generic = L.ais(jax.random.key(32), p, n_chains=200, betas=betas, base_biases=bb)
  for res in (fast, generic):
    assert float(res.log_z_lower) <= exact <= float(res.log_z_upper)
  assert abs(float(fast.log_z) - float(generic.log_z)) < float(fast.log_z_upper - fast.log_z_lower)


def test_generic_ais_errors():
  models = _block_models()
  deep = models["dbm 4-3-3"]
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="one schedule group"):
    L.ais(key, deep, summed=(0, 1), betas=[0.0, 1.0])
  with pytest.raises(ValueError, match=r"base biases of block 'h1' must have shape \[3\]"):
    L.ais(key, deep, base_biases={"h1": jnp.zeros(4)}, betas=[0.0, 1.0])
  with pytest.raises(ValueError, match="base_biases="):
    L.ais(key, deep, data=np.zeros((3, 4)), betas=[0.0, 1.0])
  with pytest.raises(ValueError, match="betas must run from 0 to 1"):
    L.ais(key, deep, betas=[0.0, 0.5])
  with pytest.raises(TypeError, match="block model"):
    L.ais(key, {"W": jnp.zeros((2, 2))}, betas=[0.0, 1.0])
  with pytest.raises(ValueError, match=r"data for block 'v' must have shape \[n, 4\]"):
    L.base_rates(deep, {"v": np.zeros((3, 5))})
  with pytest.raises(ValueError, match="NaN"):
    L.base_rates(deep, {0: np.full((3, 4), np.nan)})
