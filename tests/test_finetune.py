"""Discriminative fine-tuning: the Flax network made from a DBN, its training loop, early stopping."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats
from test_dbn import _tiny_dbn, pretrained  # the DBN pretrained on the digits, trained once

from jdbn import data
from jdbn import dbn as D
from jdbn import finetune as F

KEY = jax.random.key(0)


def _three_layer_dbn(key):
  """A random labelled 6-5-4-3(+4 labels) DBN: two layers below the top RBM."""
  k1, k2 = jax.random.split(key)
  lower, top = _tiny_dbn(k2, n_v=5, n_1=4, n_top=3, n_labels=4)
  first = _tiny_dbn(k1, n_v=6, n_1=5)[0]
  return (first, lower, top)


def test_initial_hidden_activations_are_the_dbn_up_pass():
  dbn = _three_layer_dbn(jax.random.key(1))
  x = jax.random.uniform(jax.random.key(2), (9, 6))
  for model in (dbn, D.UntiedDBN(dbn[:2], tuple(p.replace(W=-p.W) for p in dbn[:2]), dbn[2])):
    module, variables = F.from_dbn(model)
    assert module.hidden_sizes == (5, 4, 3) and module.n_classes == 4
    logits, hidden = jax.jit(lambda v, a: module.apply(v, a, return_hidden=True))(variables, x)
    up = jax.jit(D.up_pass)(model, x)
    for h, u in zip(hidden, up, strict=True):
      np.testing.assert_allclose(h, u, rtol=1e-6, atol=1e-7)
    # The output layer starts as the top RBM's p(label | h_top): softmax(b_label + W_label h_top).
    top = dbn[2]
    n_pen = D.n_penultimate(top)
    np.testing.assert_allclose(logits, up[-1] @ top.W[n_pen:].T + top.b[n_pen:], rtol=1e-5,
                               atol=1e-6)


def test_random_output_layer_and_the_ablation_have_the_same_shapes():
  dbn = _three_layer_dbn(jax.random.key(3))
  _, from_labels = F.from_dbn(dbn)
  module, random_out = F.from_dbn(dbn, key=KEY, output_init="random")
  np.testing.assert_array_equal(random_out["params"]["output"]["bias"], 0)
  assert float(jnp.std(random_out["params"]["output"]["kernel"])) < 0.05
  ablation_module, ablation = F.init_random(KEY, D.layer_sizes(dbn), n_classes=4)
  assert ablation_module == module
  shapes = lambda t: jax.tree.map(jnp.shape, t)  # noqa: E731
  assert shapes(ablation) == shapes(random_out) == shapes(from_labels)
  with pytest.raises(ValueError, match="needs a key"):
    F.from_dbn(_tiny_dbn(KEY))  # no label units: the output layer is random


def test_dropout_is_random_in_training_only():
  module, variables = F.init_random(KEY, [6, 5, 4], dropout_rate=0.5, input_dropout_rate=0.2)
  x = jnp.ones((3, 6))
  apply = jax.jit(lambda v, a, k: module.apply(v, a, train=True, rngs={"dropout": k}))
  a, b = apply(variables, x, jax.random.key(1)), apply(variables, x, jax.random.key(2))
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(apply(variables, x, jax.random.key(1)), a)
  np.testing.assert_array_equal(module.apply(variables, x), module.apply(variables, x))


def _digits_split():
  ds = data.load_digits("train")
  return data.split_validation(ds, 300)


def test_training_keeps_the_best_variables_and_resumes_exactly():
  train, valid = _digits_split()
  module, variables = F.init_random(KEY, [64, 16])
  optimizer = optax.sgd(0.5, momentum=0.9)
  args = ((train.x, train.y), (valid.x, valid.y), optimizer)
  full, history = F.train(KEY, module, variables, *args, epochs=4, batch_size=50, progress=False)
  half, _ = F.train(KEY, module, variables, *args, epochs=2, batch_size=50, progress=False)
  resumed, rest = F.train(KEY, module, variables, *args, epochs=4, batch_size=50, state=half,
                          progress=False)
  assert [r["epoch"] for r in rest] == [3, 4]
  jax.tree.map(np.testing.assert_array_equal, resumed, full)
  errors = [r["valid_error"] for r in history]
  assert float(full.best_error) == min(errors)
  assert int(full.best_epoch) == 1 + int(np.argmin(errors))
  assert F.error_rate(module, full.best_variables, valid.x, valid.y) == min(errors)
  assert errors[-1] < 0.5  # learning: chance is 0.9


def test_early_stopping_stops_after_patience_epochs_without_improvement():
  train, valid = _digits_split()
  module, variables = F.init_random(KEY, [64, 16])
  frozen = optax.sgd(0.0)  # nothing changes, so only the first epoch "improves"
  state, history = F.train(KEY, module, variables, (train.x, train.y), (valid.x, valid.y),
                           frozen, epochs=10, batch_size=50, patience=2, progress=False)
  assert [r["epoch"] for r in history] == [1, 2, 3]
  assert int(state.best_epoch) == 1 and int(state.bad_epochs) == 2


def test_early_stopping_on_the_validation_loss():
  """A validation split classified without error stops improving by error at once; its
  cross-entropy keeps falling, and monitor='loss' keeps the variables where it is lowest."""
  train, valid = _digits_split()
  easy = valid.x[:20], valid.y[:20]
  module, variables = F.init_random(KEY, [64, 16])
  args = ((train.x, train.y), easy, optax.sgd(0.5, momentum=0.9))
  state, history = F.train(KEY, module, variables, *args, epochs=6, batch_size=50,
                           monitor="loss", progress=False)
  losses = [r["valid_loss"] for r in history]
  assert float(state.best_error) == pytest.approx(min(losses), rel=1e-6)
  assert int(state.best_epoch) == 1 + int(np.argmin(losses))
  logits = F.predict_logits(module, state.best_variables, easy[0])
  best = float(jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, easy[1])))
  assert best == pytest.approx(min(losses), rel=1e-5)
  with pytest.raises(ValueError, match="monitor"):
    F.train(KEY, module, variables, *args, epochs=1, batch_size=50, monitor="accuracy")


def test_class_conditional_samples_are_recognised_by_the_fine_tuned_network():
  """DBN samples with the label clamped to k are classified as k far more often than chance.

  H0: the network's label for a sample is right with probability 0.1 (chance). With 200 samples
  we require a one-sided binomial p-value below 1e-6 (about 21% accuracy or more).
  """
  dbn, _ = pretrained()
  train, valid = _digits_split()
  module, variables = F.from_dbn(dbn)
  state, _ = F.train(KEY, module, variables, (train.x, train.y), (valid.x, valid.y),
                     optax.adam(3e-3), epochs=20, batch_size=50, progress=False)
  test = data.load_digits("test")
  assert F.error_rate(module, state.best_variables, test.x, test.y) < 0.5
  labels = jnp.repeat(jnp.arange(10), 20)
  samples = D.generate(jax.random.key(1), dbn, labels, n_steps=100)  # as in test_dbn: one compile
  pred = jnp.argmax(F.predict_logits(module, state.best_variables, samples), -1)
  hits = int(jnp.sum(pred == labels))
  p_value = stats.binomtest(hits, len(labels), 0.1, alternative="greater").pvalue
  assert p_value < 1e-6, f"{hits}/200 samples recognised"


def test_max_norm_projects_each_incoming_weight_vector_onto_the_ball():
  """The closed form: a column longer than c is scaled to length c, the rest and biases untouched."""
  module, variables = F.init_random(KEY, [6, 5, 4])
  params = variables["params"]
  params = {**params, "hidden_0": {**params["hidden_0"],
                                   "kernel": params["hidden_0"]["kernel"] * jnp.arange(1., 6.)}}
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
  c = 2.0
  base = optax.sgd(0.1)
  plain = optax.apply_updates(params, base.update(grads, base.init(params), params)[0])
  opt = optax.chain(base, F.max_norm(c))
  projected = optax.apply_updates(params, opt.update(grads, opt.init(params), params)[0])
  for name, layer in plain.items():
    w = np.asarray(layer["kernel"], np.float64)
    norm = np.linalg.norm(w, axis=0)
    expected = w * np.minimum(1.0, c / norm)
    np.testing.assert_allclose(projected[name]["kernel"], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(projected[name]["bias"], layer["bias"])
  norms = F.column_norms({"params": projected})
  assert all(float(jnp.max(n)) <= c * (1 + 1e-5) for n in norms.values())
  assert any(float(jnp.max(n)) > c for n in F.column_norms({"params": plain}).values())
  with pytest.raises(ValueError, match="positive"):
    F.max_norm(0.0)
  with pytest.raises(ValueError, match="needs the params"):
    F.max_norm(1.0).update(grads, optax.EmptyState())


def test_max_norm_inside_training_bounds_every_kernel():
  train, valid = _digits_split()
  module, variables = F.init_random(KEY, [64, 16], dropout_rate=0.5)
  optimizer = optax.chain(optax.sgd(0.5, momentum=0.9), F.max_norm(1.5))
  state, history = F.train(KEY, module, variables, (train.x, train.y), (valid.x, valid.y),
                           optimizer, epochs=3, batch_size=50, progress=False)
  for n in F.column_norms(state.variables).values():
    assert float(jnp.max(n)) <= 1.5 * (1 + 1e-5)
  assert history[-1]["valid_error"] < 0.5  # still learns: chance is 0.9


def test_fit_checkpoints_every_epoch_and_resumes_exactly(tmp_path, capsys):
  """finetune.fit: after 2 of 4 epochs and a rerun, the state and the history of every epoch are
  those of 4 epochs at once; other metadata (a retrained DBN) starts again, and says so."""
  train, valid = _digits_split()
  module, variables = F.init_random(KEY, [64, 16])
  opt = F.optimizer(0.5, decay_steps=4 * (len(train.x) // 50), max_norm_value=3.0)
  args = (KEY, module, variables, (train.x, train.y), (valid.x, valid.y), opt)
  kw = dict(batch_size=50, progress=False)
  full, _ = F.train(*args, epochs=4, **kw)
  path = tmp_path / "finetune.npz"
  F.fit(*args, epochs=2, path=path, metadata={"source": 1}, **kw)
  seen = []
  resumed, history = F.fit(*args, epochs=4, path=path, metadata={"source": 1},
                           callback=lambda e, s, row: seen.append(e), **kw)
  jax.tree.map(np.testing.assert_array_equal, resumed, full)
  assert [r["epoch"] for r in history] == [1, 2, 3, 4] and seen == [3, 4]
  from jdbn import checkpoint
  meta = checkpoint.read_metadata(path)
  assert meta["epoch"] == 4 and meta["source"] == 1 and len(meta["history"]) == 4
  for n in F.column_norms(resumed.variables).values():
    assert float(n.max()) <= 3 * (1 + 1e-5)
  capsys.readouterr()
  again, history = F.fit(*args, epochs=1, path=path, metadata={"source": 2}, **kw)
  assert "fine-tuning starts again" in capsys.readouterr().out
  assert [r["epoch"] for r in history] == [1] and int(again.epoch) == 1
