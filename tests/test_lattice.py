"""The lattice Boltzmann machine: energy against sums over bonds and the dense BM, fields against
``jax.grad``, coloured block Gibbs against exact enumeration (chi-square), bad input."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_gibbs import _chi_square_ok as _chi_square  # Pearson's test, merging small cells

from jdbn import units as U
from jdbn.models import base
from jdbn.models import lattice as L
from jdbn.samplers import gibbs as G

N_CHAINS = 10_000


def _field(shape, seed, scale=0.3):
  return scale * np.asarray(jax.random.normal(jax.random.key(seed), shape))


def _random_stencil(seed, size=5):
  k = np.asarray(jax.random.normal(jax.random.key(seed), (size, size)))
  k = 0.5 * (k + k[::-1, ::-1])
  k[size // 2, size // 2] = 0.0
  return k


MODELS = {
    "nn torus": lambda: L.init((4, 6), J=0.7, h=_field((4, 6), 1)),
    "nn free": lambda: L.init((3, 5), J=-0.4, h=0.2, periodic=False),
    "nnn torus": lambda: L.init((4, 4), stencil=L.next_nearest(0.5, -0.3), h=_field((4, 4), 2)),
    "5x5 stencil free binary": lambda: L.init((5, 4), stencil=_random_stencil(3), periodic=False,
                                              h=_field((5, 4), 4), units="binary"),
    "odd torus": lambda: L.init((3, 5), J=0.5, h=_field((3, 5), 5)),
}


def _random_states(model, n, seed):
  lo = -1.0 if isinstance(model.units, L.Spin) else 0.0
  up = jax.random.bernoulli(jax.random.key(seed), 0.5, (n,) + model.shape)
  return jnp.where(up, 1.0, lo)


def _bond_energy(model, x):
  """``-h.x - 1/2 sum_i sum_d K_d x_i x_{i+d}`` by loops over sites and offsets."""
  x, h, k = np.asarray(x, np.float64), np.asarray(model.h, np.float64), np.asarray(model.K)
  (l1, l2), (r1, r2) = model.shape, (k.shape[0] // 2, k.shape[1] // 2)
  e = -np.sum(h * x, axis=(-2, -1))
  for r, c, (d1, d2) in itertools.product(range(l1), range(l2), model.offsets):
    rr, cc = r + d1, c + d2
    if model.periodic:
      rr, cc = rr % l1, cc % l2
    elif not (0 <= rr < l1 and 0 <= cc < l2):
      continue
    e -= 0.5 * k[r1 + d1, r2 + d2] * x[..., r, c] * x[..., rr, cc]
  return e


@pytest.mark.parametrize("shape", [(4, 6), (2, 2), (6, 2), (256, 256)])
def test_checkerboard_fast_field_is_the_generic_one(shape):
  """The checkerboard torus's fields from rolls of half images (``_checkerboard``) equal the
  generic join-couple-gather path, for unequal couplings along rows and columns, batched states
  and tiny tori (``L = 2``: both neighbours along an axis are the same site)."""
  from jdbn.models import _checkerboard
  stencil = np.array([[0.0, 0.7, 0.0], [-0.3, 0.0, -0.3], [0.0, 0.7, 0.0]])
  model = L.init(shape, stencil=stencil, h=_field(shape, 9))
  assert model.colouring == L.CHECKERBOARD and _checkerboard.applies(model)
  states = L.split(model, _random_states(model, 3, 10))
  for k in (0, 1):
    phi = model.couple(L.join(model, states))
    generic = phi.reshape(3, -1)[:, np.flatnonzero((np.indices(shape).sum(0) % 2).ravel() == k)]
    np.testing.assert_allclose(model.field(states, k), generic, rtol=1e-6, atol=1e-6)
  for other in (L.init((4, 6), periodic=False, colouring="checkerboard"),
                L.init((4, 4), stencil=L.next_nearest(0.5, -0.3))):
    assert not _checkerboard.applies(other)


def test_ising_energy_textbook_form():
  """``E = -J sum_<ij> s_i s_j - h sum_i s_i``, each bond (right, down on the torus) once."""
  model = L.init((5, 6), J=0.8, h=0.3)
  s = np.asarray(_random_states(model, 8, 1))
  bonds = np.sum(s * np.roll(s, -1, -1), axis=(-2, -1)) + np.sum(s * np.roll(s, -1, -2),
                                                                 axis=(-2, -1))
  want = -0.8 * bonds - 0.3 * s.sum(axis=(-2, -1))
  np.testing.assert_allclose(L.energy(model, s), want, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_energy_over_bonds_and_field_is_minus_its_gradient(name):
  """The energy is the sum over bonds, and ``phi_k + h_k = -dE/dx_k`` for every block ``k`` on
  random states (principle 1)."""
  model = MODELS[name]()
  x = _random_states(model, 16, 0)
  energy = jax.jit(lambda x: L.energy(model, x))
  np.testing.assert_allclose(energy(x), _bond_energy(model, x), rtol=1e-5, atol=1e-5)
  states = L.split(model, x)
  np.testing.assert_allclose(model.energy(states), energy(x), rtol=1e-6)
  grads = jax.jit(jax.grad(lambda st: jnp.sum(model.energy(st))))(states)
  fields = jax.jit(lambda st: [model.field(st, k) + model.bias(k)
                               for k in range(len(model.blocks))])(states)
  for k in range(len(model.blocks)):
    np.testing.assert_allclose(fields[k], -grads[k], rtol=1e-5, atol=1e-5)


def test_colourings_found_and_proper():
  assert MODELS["nn torus"]().colouring == L.CHECKERBOARD
  assert len(MODELS["nnn torus"]().blocks) == 4
  assert len(MODELS["odd torus"]().blocks) == 3  # an odd torus is not 2-colourable
  for name, make in MODELS.items():
    model = make()
    adj = L.dense_coupling(model) != 0
    sites = L._sites(model.shape, model.colouring)[0]
    for s in sites:
      assert not adj[np.ix_(s, s)].any(), name
    assert sorted(np.concatenate(sites).tolist()) == list(range(model.n))


@pytest.mark.parametrize("name", ["nn free", "nnn torus", "5x5 stencil free binary"])
def test_dense_bm_has_the_same_energy_and_fields(name):
  model = MODELS[name]()
  dense = L.to_bm(model)
  x = np.asarray(_random_states(model, 64, 3)).reshape(64, -1)
  bm_states = tuple(x[:, np.asarray(g)] for g in dense.groups)
  lat_states = L.split(model, x.reshape((64,) + model.shape))
  np.testing.assert_allclose(dense.energy(bm_states), model.energy(lat_states), rtol=1e-5,
                             atol=1e-5)
  for k in range(len(model.blocks)):
    np.testing.assert_allclose(dense.field(bm_states, k), model.field(lat_states, k), rtol=1e-5,
                               atol=1e-5)


def test_dense_bm_energy_on_every_state_of_a_4x4_torus():
  model = L.init((4, 4), J=0.35, h=_field((4, 4), 6))
  dense = L.to_bm(model)
  x = np.asarray(U.Bernoulli().states(16)) * 2 - 1  # all 65,536 spin states
  e_bm = dense.energy(tuple(x[:, np.asarray(g)] for g in dense.groups))
  np.testing.assert_allclose(e_bm, L.energy(model, x.reshape(-1, 4, 4)), rtol=1e-5, atol=1e-5)


def _gibbs_fits(model, n_steps, seed, **kw):
  """Pearson's statistic and critical value of ``N_CHAINS`` chains' final states."""
  keys = jax.random.split(jax.random.key(seed), N_CHAINS)
  starts = G.init_random(jax.random.key(seed + 1), model, N_CHAINS)
  final = jax.jit(jax.vmap(lambda k, s: G.chain(k, model, s, n_steps, **kw)[0]))(keys, starts)
  probs = base.exact_probs(model)
  counts = np.bincount(base.state_index(model, final), minlength=len(probs))
  return _chi_square(counts, probs)


@pytest.mark.parametrize("name,make", [
    ("3x4 free checkerboard", lambda: L.init((3, 4), J=0.5, h=_field((3, 4), 7), periodic=False)),
    ("4x4 torus checkerboard", lambda: L.init((4, 4), J=0.35, h=_field((4, 4), 6))),
    ("3x4 free next-nearest, 4 colours",
     lambda: L.init((3, 4), stencil=L.next_nearest(0.4, -0.3), h=_field((3, 4), 8),
                    periodic=False)),
    ("3x3 torus, 3 colours, binary", lambda: L.init((3, 3), J=0.8, h=-0.6, units="binary")),
])
def test_coloured_gibbs_matches_exact_distribution(name, make):
  model = make()
  stat, critical = _gibbs_fits(model, 60, 10)
  assert stat < critical, (name, stat, critical)


def test_the_goodness_of_fit_check_rejects_updating_both_colours_at_once():
  """Drawing black and white sites together (a Jacobi sweep) samples p(black) p(white), not the
  model; the check above must reject it, or it proves nothing."""
  model = L.init((3, 4), J=0.5, h=_field((3, 4), 7), periodic=False)
  stat, critical = _gibbs_fits(model, 60, 10, schedule=((0, 1),))
  assert stat > critical, (stat, critical)


def test_tempered_and_magnetisation():
  model = MODELS["nn torus"]()
  x = _random_states(model, 4, 4)
  states = L.split(model, x)
  e0 = -jnp.sum(model.h * x, axis=(-2, -1))
  np.testing.assert_allclose(model.tempered(0.3).energy(states),
                             0.3 * model.energy(states), rtol=1e-5)
  base_b = [jnp.full((b.size,), 0.2) for b in model.blocks]
  np.testing.assert_allclose(model.tempered(0.0, base_b).energy(states),
                             -0.2 * x.sum(axis=(-2, -1)), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(model.tempered(1.0, base_b).energy(states), model.energy(states),
                             rtol=1e-5)
  assert e0.shape == (4,)
  np.testing.assert_allclose(L.magnetisation(model, states), x.mean(axis=(-2, -1)), rtol=1e-6)
  up = L.split(model, jnp.ones((2,) + model.shape))
  np.testing.assert_allclose(L.magnetisation(model, up), 1.0)


def test_bad_input():
  with pytest.raises(ValueError, match="symmetric"):
    L.init((4, 4), stencil=[[0, 1, 0], [0.5, 0, 1], [0, 1, 0]])
  with pytest.raises(ValueError, match="self-coupling"):
    L.init((4, 4), stencil=[[0, 1, 0], [1, 2, 1], [0, 1, 0]])
  with pytest.raises(ValueError, match="odd sides"):
    L.init((4, 4), stencil=np.zeros((2, 3)))
  with pytest.raises(ValueError, match="even L1 and L2"):
    L.init((5, 4), colouring="checkerboard")
  with pytest.raises(ValueError, match=r"offset \(-1, -1\)"):
    L.init((4, 4), stencil=L.next_nearest(), colouring="checkerboard")
  with pytest.raises(ValueError, match="couples to itself"):
    L.init((1, 4))  # the vertical bond of a 1-row torus joins a site to itself
  with pytest.raises(ValueError, match="h must be"):
    L.init((4, 4), h=np.zeros(3))
  with pytest.raises(ValueError, match="units"):
    L.init((4, 4), units=U.Gaussian())
  with pytest.raises(ValueError, match="shape"):
    L.init((4,))
  model = L.init((4, 4))
  with pytest.raises(ValueError, match="only -1 and 1"):
    L.split(model, jnp.zeros((2, 4, 4)))
  with pytest.raises(ValueError, match="only 0 and 1"):
    L.energy(L.init((4, 4), units="binary"), -jnp.ones((4, 4)))
  with pytest.raises(ValueError, match=r"\[..., 4, 4\]"):
    L.split(model, jnp.ones((4, 5)))
  with pytest.raises(ValueError, match="2 blocks"):
    L.join(model, [jnp.ones(8)] * 3)
