"""Convolutional RBMs and probabilistic max-pooling: the dense equivalent (energies, free energies,
conditionals), fields against ``jax.grad``, translation equivariance, the pooling-block sampler
and generic Gibbs against exact distributions (chi-square, with negative controls), training
against the exact log-likelihood, bad input."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_gibbs import _chi_square_ok as _chi_square  # Pearson's test, merging small cells

from jdbn import checkpoint
from jdbn import rbm as R
from jdbn import units as U
from jdbn.models import base
from jdbn.models import conv
from jdbn.samplers import gibbs as G
from jdbn.train import conv as TC


def _model(image_shape, k, r, pool=None, visible=U.Bernoulli(), seed=0, scale=1.0):
  k1, k2, k3, k4 = jax.random.split(jax.random.key(seed), 4)
  m = conv.init(k1, image_shape, k, r, pool=pool, visible=visible, weight_scale=scale)
  m = m.replace(b=0.5 * jax.random.normal(k2, m.b.shape), c=0.5 * jax.random.normal(k3, m.c.shape))
  if m.log_sigma_v is not None:
    m = m.replace(log_sigma_v=0.3 * jax.random.normal(k4, m.b.shape))
  return m


MODELS = {
    "binary": lambda: _model((2, 5, 4), 3, 2),
    "binary pooled": lambda: _model((2, 5, 5), 3, 2, pool=2),
    "pooled 3x3 blocks": lambda: _model((1, 8, 5), 2, 3, pool=3),
    "gaussian pooled": lambda: _model((3, 5, 5), 2, 2, pool=2, visible=U.Gaussian(), scale=0.3),
    "gaussian learned sigma": lambda: _model((2, 4, 5), 2, 2, visible=U.Gaussian(True), scale=0.3),
}


def _states(m, n, seed):
  kv, kh = jax.random.split(jax.random.key(seed))
  if isinstance(m.visible, U.Gaussian):
    v = jax.random.normal(kv, (n, m.n_visible))
  else:
    v = jax.random.bernoulli(kv, 0.5, (n, m.n_visible)).astype(jnp.float32)
  h = m.hidden.sample(kh, jnp.zeros((n, m.n_hidden)), jnp.zeros(m.n_hidden))
  return v, h


def _unrolled(m):
  """The dense weight matrix by a loop over every (filter, channel, position, offset)."""
  w = np.asarray(m.W, np.float64)
  n_k, n_c, r, _ = w.shape
  _, height, width = m.image_shape
  mh, mw = m.map_shape
  dense = np.zeros((n_c * height * width, n_k * mh * mw))
  for k, ch, i, j, di, dj in itertools.product(range(n_k), range(n_c), range(mh), range(mw),
                                               range(r), range(r)):
    dense[(ch * height + i + di) * width + j + dj, (k * mh + i) * mw + j] = w[k, ch, di, dj]
  return dense


@pytest.mark.parametrize("name", sorted(MODELS))
def test_equals_its_dense_equivalent(name):
  """Energy, free energy, both fields and both conditional means equal those of the RBM with the
  unrolled weights, per-unit biases and the same (pooled) hidden family, to 1e-5."""
  m = MODELS[name]()
  np.testing.assert_allclose(conv.dense_weights(m), _unrolled(m), atol=0)
  d = R.RBM(jnp.asarray(_unrolled(m), jnp.float32), jnp.repeat(m.b, m.n_visible // len(m.b)),
            jnp.repeat(m.c, m.n_hidden // len(m.c)), m.log_sigma(0), None, m.visible, m.hidden)
  v, h = _states(m, 16, 1)

  @jax.jit
  def both(m, d, v, h):
    mine = (conv.energy(m, v, h), conv.free_energy(m, v), conv.hidden_field(m, v),
            conv.visible_field(m, h), conv.hidden_mean(m, v), base.conditional_mean(m, (v, h), 0),
            base.free_energy(m, (v, h), (1,)))
    dense = (R.energy(d, v, h), R.free_energy(d, v), R.hidden_field(d, v), R.visible_field(d, h),
             R.hidden_mean(d, v), R.visible_mean(d, h), R.free_energy(d, v))
    return mine, dense

  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  for a, b in zip(*both(m, d, v, h)):
    close(a, b)
  close(conv.to_rbm(m).W, d.W)


@pytest.mark.parametrize("name", ["binary pooled", "gaussian pooled"])
def test_fields_are_minus_the_energy_gradient(name):
  """``phi_h = -dE/dh - c`` and ``phi_v = -d(E - E_v)/dv`` by ``jax.grad`` (principle 1)."""
  m = MODELS[name]()
  v, h = _states(m, 4, 2)
  e = lambda v, h: jnp.sum(conv.energy(m, v, h))
  gh = -jax.grad(e, 1)(v, h) - m.bias(1)
  gv = -jax.grad(lambda v: e(v, h) - jnp.sum(m.visible.energy(v, m.bias(0))))(v)
  np.testing.assert_allclose(gh, conv.hidden_field(m, v), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(gv, conv.visible_field(m, h), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["binary pooled", "pooled 3x3 blocks", "gaussian pooled"])
def test_matrix_product_fields_equal_xla_convolutions(name, monkeypatch):
  """The fields as matrix products over patches (the default for small inputs) equal
  ``lax.conv_general_dilated``'s (forced by ``GEMM_MAX_BYTES = 0``), values and gradients in every
  parameter and in ``v`` (the products' own VJP), with extra leading axes; the patches are the images' ``r x r`` windows."""
  m = MODELS[name]()
  v, h = _states(m, 6, 1)
  v, h = v.reshape(2, 3, -1), h.reshape(2, 3, -1)
  loss = lambda p: jnp.sum(jnp.sin(conv.hidden_field(p, v))) + jnp.sum(
      jnp.cos(conv.visible_field(p, h)))
  in_v = lambda v: jnp.sum(jnp.sin(conv.hidden_field(m, v)))
  both = lambda: (conv.hidden_field(m, v), conv.visible_field(m, h), jax.grad(in_v)(v),
                  *jax.tree.leaves(jax.grad(loss)(m)))
  gemm = both()
  monkeypatch.setattr(conv, "GEMM_MAX_BYTES", 0)
  xla = both()
  for a, b in zip(gemm, xla, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  x = np.asarray(conv.images(m, v[0]))
  r, (mh, mw) = m.filter_size, m.map_shape
  p = np.asarray(conv.patches(jnp.asarray(x), r)).reshape(3, -1, r, r, mh, mw)
  np.testing.assert_array_equal(p[:, :, 1, 0, 2, 1], x[:, :, 3, 1])


def test_conv_free_energy_score_is_the_generic_one():
  """The trainer's score for a ConvRBM (``conv.free_energy``, without the zero coupling) equals
  the generic ``base.free_energy`` with ``h`` summed out, in value and gradient."""
  m = MODELS["binary pooled"]()
  v, h = _states(m, 5, 2)
  mine = lambda p: jnp.sum(TC.free_energy_score(p, (v, h)))
  generic = lambda p: jnp.sum(base.free_energy(p, (v, h), (1,)))
  np.testing.assert_allclose(mine(m), generic(m), rtol=1e-6)
  for a, b in zip(jax.tree.leaves(jax.grad(mine)(m)), jax.tree.leaves(jax.grad(generic)(m))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_free_energy_and_log_z_by_enumeration():
  """``F(v) = -log sum_h exp(-E(v, h))`` over all ``5^2`` pooled hidden states, and
  ``log Z`` from the free energies of all ``2^9`` images equals the joint enumeration."""
  m = _model((1, 3, 3), 2, 2, pool=2, seed=3)
  hs = jnp.asarray(m.hidden.states(m.n_hidden))
  assert hs.shape == (25, 8)
  v = jnp.asarray(U.Bernoulli().states(9))
  brute = -jax.nn.logsumexp(-conv.energy(m, v[:, None], hs[None]), axis=1)
  np.testing.assert_allclose(conv.free_energy(m, v), brute, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jax.nn.logsumexp(-conv.free_energy(m, v)), base.exact_log_z(m),
                             rtol=1e-5)


def test_translation_equivariance():
  """Shifting the image shifts the hidden field, and shifting the maps shifts the visible field
  (a pattern away from the borders, so nothing falls off)."""
  m = _model((2, 12, 12), 3, 3, seed=4)
  x = np.zeros((2, 12, 12), np.float32)
  x[:, 3:7, 4:8] = np.asarray(jax.random.bernoulli(jax.random.key(5), 0.5, (2, 4, 4)))
  shift = lambda a: jnp.roll(a, (2, 1), axis=(-2, -1))
  v, v_shift = jnp.asarray(x).reshape(-1), shift(x).reshape(-1)
  np.testing.assert_allclose(conv.maps(m, conv.hidden_field(m, v_shift)),
                             shift(conv.maps(m, conv.hidden_field(m, v))), atol=1e-6)
  h = np.zeros((3, 10, 10), np.float32)
  h[:, 4, 5], h[1, 5, 4] = 1.0, 1.0
  np.testing.assert_allclose(conv.images(m, conv.visible_field(m, shift(h).reshape(-1))),
                             shift(conv.images(m, conv.visible_field(m, h.reshape(-1)))),
                             atol=1e-6)


def test_pooling_units_against_enumeration():
  """Mean, log-partition, state enumeration and the pooling units of PoolingSoftmax against sums
  over its listed states (2 maps of 2 x 4: four blocks of 2 x 2, 5^4 states)."""
  u = U.PoolingSoftmax((2, 4), 2)
  n = 16
  s = u.states(n)
  assert s.shape == (625, n) and u.n_states(n) == 625 and len(np.unique(s, axis=0)) == 625
  np.testing.assert_array_equal(np.asarray(u.states_at(jnp.arange(625), n)), s)
  phi, bias = jax.random.normal(jax.random.key(6), (n,)), 0.3 * jnp.ones(n)
  logits = -u.energy(s, bias) + s @ phi
  p = jax.nn.softmax(logits)
  np.testing.assert_allclose(u.log_partition(phi, bias), jax.nn.logsumexp(logits), rtol=1e-5)
  np.testing.assert_allclose(u.mean(phi, bias), p @ s, atol=1e-6)
  pooled = U.pooling.pool(s, (2, 4), 2).reshape(625, -1)
  assert set(np.unique(pooled)) == {0.0, 1.0}
  np.testing.assert_allclose(1 - u.off_probability(phi, bias), p @ pooled, atol=1e-6)
  u.validate(s)
  with pytest.raises(ValueError, match="more than one unit on"):
    u.validate(np.ones(n))


def _block_counts(u, samples):
  """Outcome index of each pooling block (0: off, 1 + j: unit j on)."""
  g = np.asarray(U.pooling.to_groups(samples, u.map_shape, u.pool))
  assert np.all(g.sum(-1) <= 1)
  return np.where(g.sum(-1) == 0, 0, 1 + g.argmax(-1))


@pytest.mark.parametrize("c", [2, 3])
def test_pooling_block_sampler_chi_square(c):
  """Every pooling block's sampled outcome against the exact ``(c^2 + 1)``-way softmax; and the
  negative control: a sampler that forgets the "off" outcome fails the same check."""
  u = U.PoolingSoftmax((c, c), c)
  z = np.asarray(jax.random.normal(jax.random.key(7), (c * c,)), np.float32)
  probs = np.asarray(jax.nn.softmax(jnp.concatenate([jnp.zeros(1), jnp.asarray(z)])))
  n = 20_000
  x = u.sample(jax.random.key(8), jnp.zeros((n, c * c)), jnp.asarray(z))
  counts = np.bincount(_block_counts(u, x).ravel(), minlength=c * c + 1)
  stat, critical = _chi_square(counts, probs)
  assert stat < critical, (stat, critical)
  wrong = U.Softmax(c * c).sample(jax.random.key(8), jnp.zeros((n, c * c)), jnp.asarray(z))
  counts = np.bincount(_block_counts(u, wrong).ravel(), minlength=c * c + 1)
  stat, critical = _chi_square(counts, probs)
  assert stat > critical, (stat, critical)


N_CHAINS = 20_000


def _gibbs_final(m, n_steps, **kw):
  start = G.init_random(jax.random.key(9), m, N_CHAINS)
  return jax.jit(lambda k, s: G.chain(k, m, s, n_steps, **kw)[0])(jax.random.key(10), start)


@pytest.mark.parametrize("case", ["pooled", "plain"])
def test_generic_gibbs_matches_exact_joint(case):
  """The generic block-Gibbs kernel on a tiny conv RBM: ``N_CHAINS`` chains' final ``(v, h)``
  against exact ``p(v, h)`` (pooled: 1 x 3 x 3 image, one 2 x 2 filter, one 2 x 2 pooling block,
  2^9 * 5 states; plain: 1 x 2 x 3 image, two 2 x 2 filters, 2^6 * 2^4 states), and ``p(v)``."""
  m = (_model((1, 3, 3), 1, 2, pool=2, seed=11) if case == "pooled" else
       _model((1, 2, 3), 2, 2, seed=12))
  final = _gibbs_final(m, 30)
  probs = base.exact_probs(m)
  counts = np.bincount(base.state_index(m, final), minlength=len(probs))
  stat, critical = _chi_square(counts, probs)
  assert stat < critical, (stat, critical)
  n_h = base.n_states(m) // 2**m.n_visible
  pv = probs.reshape(-1, n_h).sum(1)
  stat, critical = _chi_square(counts.reshape(-1, n_h).sum(1), pv)
  assert stat < critical, (stat, critical)


def test_the_joint_check_rejects_a_wrong_sampler():
  """Negative control: updating ``v`` and ``h`` at once (a Jacobi sweep) is not a Gibbs sampler
  of the pooled model, and the chi-square check above rejects it."""
  m = _model((1, 3, 3), 1, 2, pool=2, seed=11)
  final = _gibbs_final(m, 30, schedule=((0, 1),))
  probs = base.exact_probs(m)
  stat, critical = _chi_square(np.bincount(base.state_index(m, final), minlength=len(probs)),
                               probs)
  assert stat > critical, (stat, critical)


def test_tempered_copy():
  """``tempered(beta, base)`` has the energy ``beta E + (1 - beta) E_base`` (binary units:
  linear in the biases); ``beta = 1`` is the model and ``beta = 0`` the base-rate model."""
  m = MODELS["binary pooled"]()
  v, h = _states(m, 8, 13)
  b0 = jax.random.normal(jax.random.key(14), (m.n_visible,))
  c0 = jax.random.normal(jax.random.key(15), (m.n_hidden,))
  e_base = -(v @ b0) - (h @ c0)
  for beta in (0.0, 0.3, 1.0):
    t = m.tempered(beta, (b0, c0))
    np.testing.assert_allclose(t.energy((v, h)), beta * m.energy((v, h)) + (1 - beta) * e_base,
                               rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(m.tempered(0.5).energy((v, h)), 0.5 * m.energy((v, h)), rtol=1e-5)


def _bars():
  """The six 3 x 3 images with one full row or column on, 20 copies each: ``[120, 1, 3, 3]``."""
  eye = np.eye(3, dtype=np.float32)
  rows = eye[:, :, None] * np.ones((1, 1, 3), np.float32)
  out = np.concatenate([rows, rows.transpose(0, 2, 1)])
  return np.repeat(out[:, None], 20, axis=0)


def _log_likelihood(m, flat):
  log_z = jax.nn.logsumexp(-conv.free_energy(m, jnp.asarray(U.Bernoulli().states(m.n_visible))))
  return float(jnp.mean(-conv.free_energy(m, flat)) - log_z)


@pytest.mark.parametrize("algorithm", ["cd", "pcd"])
def test_training_raises_the_exact_log_likelihood(algorithm):
  """CD-1 and PCD (Adam) on the six 3 x 3 bars: the exact log-likelihood (``log Z`` over all
  ``2^9`` images) starts at that of independent pixels (biases from the data, filters near 0) and
  ends more than 0.4 nats above it, which only couplings can do. The gain varies with the key: over
  five initialisations (keys 0-4, not this test's) it was 0.68-1.19 nats for CD-1 and 1.03-1.23
  for PCD after these 120 epochs, and 0.27-0.77 after 30."""
  data = _bars()
  m = conv.init(jax.random.key(16), (1, 3, 3), 4, 2, pool=2, data=data)
  flat = conv.check_images(m, data)
  p = flat.mean(0)
  independent = float(jnp.mean(jnp.sum(jnp.where(flat > 0, jnp.log(p), jnp.log1p(-p)), -1)))
  assert abs(_log_likelihood(m, flat) - independent) < 0.01
  trainer = (TC.cd(optax.adam(0.05), 1) if algorithm == "cd" else
             TC.pcd(optax.adam(0.05), 1, n_chains=60))
  state = trainer.init(jax.random.key(17), m)
  for epoch in range(120):
    state, info = trainer.epoch(jax.random.key(100 + epoch), state, flat, 20)
  assert np.isfinite(info.loss)
  assert _log_likelihood(state.params, flat) > independent + 0.4


def test_sparsity_penalty():
  """Lee et al.'s ``cost * sum_k (target - q_k)^2`` on the positive batch: its value; with
  ``biases_only`` its gradient reaches only the hidden biases, with sign ``q_k - target``."""
  m = MODELS["binary pooled"]()
  v, h = _states(m, 8, 18)
  q = np.asarray(conv.hidden_mean(m, v)).reshape(8, m.n_filters, -1).mean(axis=(0, 2))
  pos = TC.PH.Positive((v, h))
  pen = TC.sparsity(0.05, 0.5)
  np.testing.assert_allclose(pen(m, pos), 0.5 * np.sum((0.05 - q)**2), rtol=1e-5)
  grads = jax.grad(pen)(m, pos)
  assert np.all(np.asarray(grads.W) == 0) and np.all(np.asarray(grads.b) == 0)
  np.testing.assert_array_equal(np.sign(grads.c), np.sign(q - 0.05))
  assert np.any(np.asarray(jax.grad(TC.sparsity(0.05, 0.5, biases_only=False))(m, pos).W) != 0)
  with pytest.raises(ValueError, match="sparsity target"):
    TC.sparsity(1.5, 0.1)


def test_checkpoint_round_trip_and_jit(tmp_path):
  """A pooled Gaussian model survives a checkpoint (the unit families are registered); jit and
  eager sampling agree for the same key."""
  m = MODELS["gaussian pooled"]()
  loaded = checkpoint.load(checkpoint.save(tmp_path / "crbm.npz", m))
  assert loaded.hidden == m.hidden and loaded.image_shape == m.image_shape
  v, _ = _states(m, 3, 19)
  np.testing.assert_allclose(conv.free_energy(loaded, v), conv.free_energy(m, v), rtol=1e-6)
  key = jax.random.key(20)
  np.testing.assert_array_equal(conv.sample_hidden(key, m, v),
                                jax.jit(conv.sample_hidden)(key, m, v))


def test_bad_input():
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="larger than"):
    conv.init(key, (1, 4, 4), 2, 5)
  with pytest.raises(ValueError, match="do not tile"):
    conv.init(key, (1, 6, 6), 2, 2, pool=2)  # 5 x 5 maps
  with pytest.raises(ValueError, match="do not tile"):
    U.PoolingSoftmax((4, 6), 3)
  with pytest.raises(ValueError, match="image_shape"):
    conv.init(key, (6, 6), 2, 2)
  with pytest.raises(ValueError, match="Bernoulli or Gaussian"):
    conv.init(key, (1, 6, 6), 2, 3, visible=U.ReLU())
  m = conv.init(key, (2, 5, 5), 2, 2, pool=2)
  with pytest.raises(ValueError, match="3 channels where the filters have 2"):
    conv.check_images(m, np.zeros((4, 3, 5, 5)))
  with pytest.raises(ValueError, match=r"\[\.\.\., 2, 5, 5\]"):
    conv.check_images(m, np.zeros((4, 2, 6, 5)))
  with pytest.raises(ValueError, match="NaN or inf"):
    conv.check_images(m, np.full((1, 2, 5, 5), np.nan))
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    conv.check_images(m, np.full((1, 2, 5, 5), 2.0))
  with pytest.raises(ValueError, match="flattened block"):
    conv.hidden_field(m, np.zeros((4, 2, 5, 5)))
  with pytest.raises(ValueError, match="NaN or inf"):
    conv.init(key, (2, 5, 5), 2, 2, data=np.full((3, 2, 5, 5), np.inf))
  with pytest.raises(ValueError, match="more than one unit on"):
    m.hidden.validate(np.ones((1, m.n_hidden)))


def _oriented(n, seed):
  """``n`` noisy 8 x 8 images of a random horizontal (label 0) or vertical (label 1) bar."""
  kl, kp, kn = jax.random.split(jax.random.key(seed), 3)
  y = np.asarray(jax.random.bernoulli(kl, 0.5, (n,)), np.int32)
  pos = np.asarray(jax.random.randint(kp, (n,), 1, 7))
  x = np.zeros((n, 8, 8), np.float32)
  x[y == 0, pos[y == 0], 1:7] = 1.0
  x[y == 1, 1:7, pos[y == 1]] = 1.0
  flip = np.asarray(jax.random.bernoulli(kn, 0.05, x.shape))
  return np.abs(x - flip)[:, None], y


def test_two_layer_cdbn_features_classify():
  """Greedy CDBN training (layer 2 on layer 1's pooling probabilities) and a linear softmax on
  the pooled maps of both layers tell horizontal from vertical bars on held-out images (error
  < 25%; 14% when written), which no linear classifier of the pixels can: a bar's pixel sum under
  any weights is a row sum or a column sum, and all row sums cannot exceed all column sums (their
  totals are equal), so the same classifier on the pixels is at chance (> 30%)."""
  from jdbn.models import cdbn as CDBN
  from jdbn.train import cdbn as TCD
  x, y = _oriented(400, 21)
  l1 = conv.init(jax.random.key(22), (1, 8, 8), 4, 3, pool=2, weight_scale=0.1, hidden_bias=-2.0,
                 data=x)
  l2 = conv.init(jax.random.key(23), CDBN.pooled_shape(l1), 3, 2, pool=2, weight_scale=0.1,
                 hidden_bias=-2.0)
  with pytest.raises(ValueError, match="pooling maps"):
    CDBN.check_stack([l1, conv.init(jax.random.key(0), (3, 3, 3), 2, 2)])
  trainers = [TC.cd(optax.adam(0.01), 1, sparsity_target=0.1, sparsity_cost=1.0)] * 2
  flat = conv.check_images(l1, x)
  model = TCD.greedy(jax.random.key(24), [l1, l2], trainers, flat, epochs=10, batch_size=20)
  assert not np.allclose(model.layers[1].W, l2.W)
  feats = CDBN.features(model, flat)
  assert feats.shape == (400, 4 * 3 * 3 + 3 * 1 * 1)
  fit = lambda f: TCD.fit_linear(jax.random.key(25), f[:300], y[:300], 2, optax.adam(0.05),
                                 epochs=50, batch_size=50)
  assert TCD.error_rate(fit(feats), feats[300:], y[300:]) < 0.25
  assert TCD.error_rate(fit(flat), flat[300:], y[300:]) > 0.3
