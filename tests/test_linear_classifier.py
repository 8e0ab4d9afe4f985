"""The linear classifier on CDBN features (:func:`jdbn.train.cdbn.fit_linear`): its losses against
their formulas, and its Optax fit against the optimum that SciPy's L-BFGS finds for the same
convex objective."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize

from jdbn.train import cdbn as TCD


def _blobs(key, n_per_class=60, d=5, n_classes=3, spread=1.0):
  centres = 2.0 * jax.random.normal(jax.random.fold_in(key, 0), (n_classes, d))
  y = jnp.repeat(jnp.arange(n_classes), n_per_class)
  x = centres[y] + spread * jax.random.normal(jax.random.fold_in(key, 1), (len(y), d))
  return x, y


def test_losses_equal_their_formulas():
  key = jax.random.key(0)
  x, y = _blobs(key, n_per_class=4)
  params = TCD.Linear(jax.random.normal(jax.random.key(1), (5, 3)),
                      jax.random.normal(jax.random.key(2), (3,)))
  s = np.asarray(x @ params.W + params.b, np.float64)
  yy = np.asarray(y)
  hinge = np.mean([sum(max(0.0, 1.0 - (1.0 if c == yy[i] else -1.0) * s[i, c]) ** 2
                       for c in range(3)) for i in range(len(yy))])
  np.testing.assert_allclose(TCD.linear_loss(params, x, y, "squared_hinge"), hinge, rtol=1e-5)
  log_p = s - np.log(np.exp(s).sum(1, keepdims=True))
  np.testing.assert_allclose(TCD.linear_loss(params, x, y), -log_p[np.arange(len(yy)), yy].mean(),
                             rtol=1e-5)


@pytest.mark.parametrize("loss", ["squared_hinge", "softmax"])
def test_fit_reaches_the_regularised_optimum(loss):
  """Full-batch Adam with ``add_decayed_weights(l2)`` minimises ``mean loss + l2/2 |W|^2`` (the
  bias unpenalised); L-BFGS on the same objective in float64 is the reference."""
  x, y = _blobs(jax.random.key(3), spread=1.5)
  l2, d, c = 1e-2, x.shape[1], 3

  def objective(params):
    return TCD.linear_loss(params, x, y, loss) + 0.5 * l2 * jnp.sum(params.W ** 2)

  value_and_grad = jax.jit(jax.value_and_grad(objective))

  def flat(theta):
    p = TCD.Linear(jnp.asarray(theta[:d * c].reshape(d, c), jnp.float32),
                   jnp.asarray(theta[d * c:], jnp.float32))
    v, g = value_and_grad(p)
    return float(v), np.concatenate([np.ravel(g.W), np.ravel(g.b)]).astype(np.float64)

  ref = scipy.optimize.minimize(flat, np.zeros(d * c + c), jac=True, method="L-BFGS-B",
                                options=dict(maxiter=2000, gtol=1e-7))
  opt = optax.chain(optax.add_decayed_weights(l2, mask=TCD.Linear(True, False)),
                    optax.adam(optax.cosine_decay_schedule(0.05, 1500)))
  fitted = TCD.fit_linear(jax.random.key(4), x, y, c, opt, epochs=1500, batch_size=x.shape[0],
                          loss=loss)
  assert float(objective(fitted)) == pytest.approx(ref.fun, abs=1e-3)
  assert float(objective(fitted)) < 0.5 * float(objective(TCD.Linear(0 * fitted.W, 0 * fitted.b)))


def test_squared_hinge_separates_separable_classes_with_unit_margins():
  """Well-separated blobs and a tiny L2 cost: every training point is on the right side of every
  one-vs-rest hyperplane, nearly all with margin one or more (the SVM's loss near zero)."""
  x, y = _blobs(jax.random.key(5), spread=0.2)
  opt = optax.chain(optax.add_decayed_weights(1e-5, mask=TCD.Linear(True, False)),
                    optax.adam(0.05))
  fitted = TCD.fit_linear(jax.random.key(6), x, y, 3, opt, epochs=300, batch_size=30,
                          loss="squared_hinge")
  assert TCD.error_rate(fitted, x, y) == 0.0
  assert float(TCD.linear_loss(fitted, x, y, "squared_hinge")) < 0.01


def test_unknown_loss_is_refused():
  x, y = _blobs(jax.random.key(7), n_per_class=2)
  with pytest.raises(ValueError, match="loss must be one of"):
    TCD.fit_linear(jax.random.key(8), x, y, 3, optax.sgd(0.1), epochs=1, batch_size=2,
                   loss="hinge")
