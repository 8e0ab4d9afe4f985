"""Conditional RBMs: against the RBM they reduce to, exact enumeration, and chi-square tests of
Gibbs sampling with the context fixed against the exact ``p(y | x)``."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_gibbs import _chi_square_ok as _chi_square  # Pearson's test, merging small cells

from jdbn import units as U
from jdbn.models import base
from jdbn.models import crbm as C
from jdbn.models import rbm as R
from jdbn.samplers import gibbs as G
from jdbn.samplers import sequence as S
from jdbn.train import crbm as TC

N_CHAINS = 10_000
FAMILIES = [(U.Bernoulli(), U.Bernoulli()), (U.Gaussian(), U.Bernoulli()),
            (U.Gaussian(learn_sigma=True), U.ReLU())]


def _model(visible=U.Bernoulli(), hidden=U.Bernoulli(), n_x=3, n_y=4, n_h=3, seed=0):
  keys = jax.random.split(jax.random.key(seed), 4)
  p = C.init(keys[0], n_x, n_y, n_h, visible, hidden, weight_scale=1.0)
  p = p.replace(b=0.5 * jax.random.normal(keys[1], (n_y,)),
                c=0.5 * jax.random.normal(keys[2], (n_h,)))
  if p.log_sigma_v is not None:
    p = p.replace(log_sigma_v=0.3 * jax.random.normal(keys[3], (n_y,)))
  return p


def _inputs(p, n=6, seed=1):
  kx, ky, kh = jax.random.split(jax.random.key(seed), 3)
  x = jax.random.normal(kx, (n, p.n_context))
  y = p.visible.sample(ky, jnp.zeros((n, p.n_visible)), p.b, p.log_sigma_v)
  h = p.hidden.sample(kh, jnp.zeros((n, p.n_hidden)), p.c, p.log_sigma_h)
  return x, y, h


@pytest.mark.parametrize("visible,hidden", FAMILIES)
def test_zero_context_weights_equal_an_rbm(visible, hidden):
  p = _model(visible, hidden)
  p = p.replace(A=jnp.zeros_like(p.A), B=jnp.zeros_like(p.B))
  rbm = R.RBM(p.W, p.b, p.c, p.log_sigma_v, p.log_sigma_h, visible, hidden)
  x, y, h = _inputs(p)
  v = C.join(p, x, y)
  np.testing.assert_allclose(C.energy(p, v, h), R.energy(rbm, y, h), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(C.free_energy(p, v), R.free_energy(rbm, y), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(C.hidden_mean(p, v), R.hidden_mean(rbm, y), rtol=1e-6)
  np.testing.assert_allclose(C.visible_mean(p, x, h), R.visible_mean(rbm, h), rtol=1e-6)
  # The same key gives the same draws, through the generic kernel and the helpers.
  key = jax.random.key(5)
  ours, _ = G.chain(key, p, (v, h), 4)
  theirs, _ = G.chain(key, rbm, (y, h), 4)
  np.testing.assert_array_equal(ours[0][:, p.n_context:], theirs[0])
  np.testing.assert_array_equal(ours[1], theirs[1])
  np.testing.assert_array_equal(ours[0][:, :p.n_context], x)  # the context never moved
  np.testing.assert_array_equal(C.sample_hidden(key, p, v), R.sample_hidden(key, rbm, y))
  np.testing.assert_array_equal(C.sample_visible(key, p, x, h), R.sample_visible(key, rbm, h))


@pytest.mark.parametrize("visible,hidden", FAMILIES)
def test_conditioned_rbm_has_the_dynamic_biases(visible, hidden):
  """For fixed x the CRBM is the RBM with biases b + sigma (x A), c + sigma (x B)."""
  p = _model(visible, hidden)
  x, y, h = _inputs(p)
  rbm, v = C.conditioned(p, x), C.join(p, x, y)
  np.testing.assert_allclose(C.hidden_mean(p, v), R.hidden_mean(rbm, y), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(C.visible_mean(p, x, h), R.visible_mean(rbm, h), rtol=1e-5,
                             atol=1e-6)
  # Energies differ by a function of x alone (zero unless y is Gaussian).
  gap = C.energy(p, v, h) - R.energy(rbm, y, h)
  y2, h2 = _inputs(p, seed=9)[1:]
  gap2 = C.energy(p, C.join(p, x, y2), h2) - R.energy(rbm, y2, h2)
  np.testing.assert_allclose(gap, gap2, atol=1e-4)
  if isinstance(visible, U.Bernoulli):
    np.testing.assert_allclose(gap, 0, atol=1e-5)


def test_fields_are_minus_the_energy_gradient():
  p = _model()
  x, y, h = _inputs(p)
  v = C.join(p, x, y)
  g_v, g_h = jax.grad(lambda v, h: jnp.sum(C.energy(p, v, h)), argnums=(0, 1))(v, h)
  # Bernoulli: -dE/dy = b + phi_y and -dE/dh = c + phi_h.
  np.testing.assert_allclose(-g_v[:, p.n_context:], p.b + p.field((v, h), 0)[:, p.n_context:],
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(-g_h, p.c + p.field((v, h), 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("visible", [U.Bernoulli(), U.Gaussian(learn_sigma=True)])
def test_conditional_free_energy_by_enumerating_h(visible):
  p = _model(visible)
  x, y, _ = _inputs(p)
  v = C.join(p, x, y)
  hs = jnp.asarray(U.Bernoulli().states(p.n_hidden))  # [8, 3]
  energies = C.energy(p, v[:, None, :], hs[None])  # [6, 8]
  np.testing.assert_allclose(C.free_energy(p, v), -jax.nn.logsumexp(-energies, axis=1),
                             rtol=1e-5, atol=1e-5)
  # The trainer's generic score is the same function.
  np.testing.assert_allclose(base.free_energy(p, (v, None), (1,)), C.free_energy(p, v),
                             rtol=1e-6, atol=1e-6)


def test_exact_log_conditional_normalises():
  p = _model()
  x = jax.random.normal(jax.random.key(3), (2, p.n_context))
  ys = jnp.asarray(U.Bernoulli().states(p.n_visible))
  logp = C.exact_log_conditional(p, C.join(p, x[:, None, :], ys[None]))  # [2, 16]
  np.testing.assert_allclose(jnp.exp(jax.nn.logsumexp(logp, axis=1)), 1.0, rtol=1e-5)
  assert float(jnp.max(jnp.abs(logp[0] - logp[1]))) > 0.1  # the context matters


def _exact_and_counts(p, x, ys):
  ys_all = jnp.asarray(U.Bernoulli().states(p.n_visible))
  probs = np.exp(np.asarray(C.exact_log_conditional(p, C.join(p, x, ys_all)), np.float64))
  states = U.Bernoulli().states(p.n_visible)
  index = np.argmax(np.all(np.asarray(ys)[:, None, :] == states[None], -1), 1)
  return np.bincount(index, minlength=len(states)), probs / probs.sum()


CONTEXTS = np.array([[1.5, -1.0, 0.5], [-1.0, 1.5, -1.5]], np.float32)


def _chains(model, x, key=11, clamp=None):
  keys = jax.random.split(jax.random.key(key), N_CHAINS)
  v0 = jnp.broadcast_to(C.join(model, x, jnp.zeros(model.n_visible)),
                        (N_CHAINS, model.blocks[0].size))
  h0 = jnp.zeros((N_CHAINS, model.n_hidden))
  run = jax.jit(jax.vmap(lambda k, v, h: G.chain(k, model, (v, h), 30, clamp=clamp)[0]))
  return run(keys, v0, h0)


@pytest.mark.parametrize("context", [0, 1])
def test_gibbs_with_the_context_fixed_samples_the_exact_conditional(context):
  p, x = _model(), CONTEXTS[context]
  v, _ = _chains(p, x)
  np.testing.assert_array_equal(v[:, :p.n_context], np.broadcast_to(x, (N_CHAINS, 3)))
  stat, critical = _chi_square(*_exact_and_counts(p, x, v[:, p.n_context:]))
  assert stat < critical, (stat, critical)
  # Clamping the context explicitly changes nothing: the frozen units never move anyway.
  clamped, _ = _chains(p, x, clamp={"v": C.context_mask(p)})
  np.testing.assert_array_equal(clamped, v)


def test_the_check_rejects_a_sampler_that_ignores_the_context():
  """A chain that drops the context-to-hidden weights B samples another distribution; the same
  check must reject it, or the test above proves nothing."""
  p, x = _model(), CONTEXTS[0]
  v, _ = _chains(p.replace(B=jnp.zeros_like(p.B)), x)
  stat, critical = _chi_square(*_exact_and_counts(p, x, v[:, p.n_context:]))
  assert stat > critical, (stat, critical)


def test_gaussian_outputs_have_the_exact_conditional_mean():
  """Gaussian y, Bernoulli h: E[y | x] = sum_h p(h | x) E[y | h, x], p(h | x) by enumerating h."""
  p = _model(U.Gaussian(), U.Bernoulli(), seed=2)
  p = p.replace(W=0.7 * p.W)
  x = CONTEXTS[0]
  hs = jnp.asarray(U.Bernoulli().states(p.n_hidden))
  rbm = C.conditioned(p, x)
  logp_h = -R.free_energy_hidden(rbm, hs)
  exact = jnp.sum(jax.nn.softmax(logp_h)[:, None] * C.visible_mean(p, x, hs), 0)
  ys = S.sample(jax.random.key(4), p, jnp.broadcast_to(x, (N_CHAINS, 3)), 30)
  z = (np.mean(ys, 0) - exact) / (np.std(ys, 0) / np.sqrt(N_CHAINS))
  assert np.all(np.abs(z) < 4.0), z  # 4 units, two-sided 4 s.e. each: false alarm < 3e-4


def _toy(key, n=512):
  """y = (x0, x1, x0 xor x2, x2), each bit flipped with probability 0.1, x uniform in {0,1}^3."""
  kx, kf = jax.random.split(key)
  x = (jax.random.uniform(kx, (n, 3)) < 0.5).astype(jnp.float32)
  y = jnp.stack([x[:, 0], x[:, 1], jnp.abs(x[:, 0] - x[:, 2]), x[:, 2]], 1)
  flip = (jax.random.uniform(kf, y.shape) < 0.1).astype(jnp.float32)
  return jnp.concatenate([x, jnp.abs(y - flip)], 1)


@pytest.mark.parametrize("algorithm", ["cd", "pcd", "cd-from-zeros"])
def test_training_raises_the_exact_conditional_likelihood(algorithm):
  data = _toy(jax.random.key(0))
  p = C.init(jax.random.key(1), 3, 4, 8)
  opt = optax.sgd(0.1, momentum=0.5)
  trainer = {"cd": lambda: TC.cd(opt, 1), "pcd": lambda: TC.pcd(opt, 1, batch_size=32),
             "cd-from-zeros": lambda: TC.cd(opt, 5, start="zeros")}[algorithm]()
  state = trainer.init(jax.random.key(2), p)
  before = float(jnp.mean(C.exact_log_conditional(p, data)))
  for epoch in range(40):
    state, _ = trainer.epoch(jax.random.key(100 + epoch), state, data, 32)
  after = float(jnp.mean(C.exact_log_conditional(state.params, data)))
  # Independent uniform bits give 4 log(1/2) = -2.77 nats; the noise floor is 4 H(0.1) = -1.30.
  assert before < -2.7 and after > -1.9, (before, after)


def test_sequences_roll_forward():
  p = _model(U.Gaussian(), U.Bernoulli(), n_x=6, n_y=2, n_h=4)
  frames = jax.random.normal(jax.random.key(0), (2, 5, 2))
  pairs = S.windows(frames, 3)
  assert pairs.shape == (2, 2, 8)
  np.testing.assert_array_equal(pairs[1, 1], frames[1, 1:5].reshape(-1))
  out = S.generate(jax.random.key(1), p, frames, 4, k=3)
  assert out.shape == (2, 4, 2)
  np.testing.assert_array_equal(out, S.generate(jax.random.key(1), p, frames, 4, k=3))
  first = S.sample(jax.random.split(jax.random.key(1), 4)[0], p, frames[:, 2:].reshape(2, 6), 3,
                   y0=frames[:, -1], mean_last=True)
  np.testing.assert_allclose(out[:, 0], first, rtol=1e-6)


def test_bad_input_gives_clear_errors():
  p = _model()
  with pytest.raises(ValueError, match=r"context x must have shape \[\.\.\., 3\]"):
    C.join(p, jnp.zeros((2, 5)), jnp.zeros((2, 4)))
  with pytest.raises(ValueError, match="n_context=3"):
    C.free_energy(p, jnp.zeros((2, 6)))
  with pytest.raises(ValueError, match="context x"):
    S.sample(jax.random.key(0), p, jnp.zeros(4), 2)
  bad = np.zeros((4, 7), np.float32)
  bad[1, 0] = np.nan
  trainer = TC.cd(optax.sgd(0.1))
  state = trainer.init(jax.random.key(0), p)
  with pytest.raises(ValueError, match="context.*NaN"):
    trainer.epoch(jax.random.key(0), state, bad, 2)
  bad[1, 0], bad[2, 5] = 0.0, np.inf
  with pytest.raises(ValueError, match="NaN or inf"):
    C.check_data(p, bad)
  seq = _model(n_x=6, n_y=2)
  with pytest.raises(ValueError, match="fewer than the history of 3"):
    S.generate(jax.random.key(0), seq, jnp.zeros((2, 2)), 3)
  with pytest.raises(ValueError, match="fewer than the history"):
    S.windows(jnp.zeros((3, 2)), 3)
  with pytest.raises(ValueError, match="NaN or inf"):
    S.generate(jax.random.key(0), seq, jnp.full((3, 2), jnp.nan), 3)
  with pytest.raises(ValueError, match="multiple of the frame size"):
    S.generate(jax.random.key(0), _model(n_x=5, n_y=2), jnp.zeros((3, 2)), 3)


def test_tempered_copy_interpolates():
  p = _model()
  x, y, h = _inputs(p)
  v = C.join(p, x, y)
  np.testing.assert_allclose(p.tempered(1.0).energy((v, h)), p.energy((v, h)), rtol=1e-6)
  flat = p.tempered(0.0)
  np.testing.assert_allclose(flat.energy((v, h)), -(h @ jnp.zeros(3)), atol=1e-6)
  half = p.tempered(0.5)
  np.testing.assert_allclose(half.energy((v, h)), 0.5 * p.energy((v, h)), rtol=1e-5, atol=1e-5)


def test_log_conditional_ais_and_raise_sandwich_the_exact_value():
  from jdbn.likelihood import crbm as LC  # noqa: PLC0415
  p = _model(n_x=3, n_y=8, n_h=5, seed=3)
  p = p.replace(W=2.0 * p.W)  # strongly coupled outputs: far from the base model
  x, y, _ = _inputs(p, n=10, seed=4)
  v = C.join(p, x, y)
  exact = np.asarray(C.exact_log_conditional(p, v))
  betas = np.linspace(0, 1, 2001) ** 2
  est = LC.log_conditional(jax.random.key(5), p, v, n_chains=200, raise_chains=50, betas=betas,
                           chunk_size=4)
  np.testing.assert_allclose(est.log_p, exact, atol=0.03)
  np.testing.assert_allclose(est.raise_log_p, exact, atol=0.05)
  assert np.all(est.log_p_lower <= exact + 1e-4) and np.all(exact <= est.log_p_upper + 1e-4)
  # with the output-hidden weights off the base model is exact: AIS has nothing to anneal
  p0 = p.replace(W=jnp.zeros_like(p.W))
  est0 = LC.log_conditional(jax.random.key(6), p0, v, n_chains=4, betas=np.linspace(0, 1, 3))
  np.testing.assert_allclose(est0.log_p, C.exact_log_conditional(p0, v), atol=1e-5)
  assert est0.raise_log_p is None


def test_log_conditional_refuses_bad_input():
  from jdbn.likelihood import crbm as LC  # noqa: PLC0415
  p = _model()
  with pytest.raises(ValueError, match="n_chains"):
    LC.log_conditional(jax.random.key(0), p, jnp.zeros((2, 7)), n_chains=0)
  with pytest.raises(ValueError, match="shape"):
    LC.log_conditional(jax.random.key(0), p, jnp.zeros((2, 6)))
  with pytest.raises(ValueError, match="non-empty"):
    LC.log_conditional(jax.random.key(0), p, jnp.zeros((0, 7)))
