"""The unrolled Threefry keys draw JAX's own Threefry numbers, bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdbn.samplers import _threefry as T


@pytest.mark.parametrize("shape", [(), (7,), (3, 5), (2, 3, 4), (16, 4097)])
def test_every_draw_equals_the_original_keys(shape):
  key = jax.random.key(42)
  fast = T.unrolled(key)
  assert jax.random.key_impl(fast) != jax.random.key_impl(key)
  for dtype in (jnp.uint8, jnp.uint16, jnp.uint32):
    np.testing.assert_array_equal(jax.random.bits(key, shape, dtype),
                                  jax.random.bits(fast, shape, dtype))
  for draw in (jax.random.uniform, jax.random.normal, lambda k, s: jax.random.bernoulli(k, 0.3, s),
               lambda k, s: jax.random.categorical(k, jnp.zeros(s + (5,)))):
    np.testing.assert_array_equal(draw(key, shape), draw(fast, shape))
  np.testing.assert_array_equal(jax.jit(jax.random.uniform, static_argnums=1)(fast, shape),
                                jax.random.uniform(key, shape))


def test_split_and_fold_in_stay_on_the_same_stream():
  key = jax.random.key(3)
  fast = T.unrolled(key)
  np.testing.assert_array_equal(jax.random.key_data(jax.random.split(key, 4)),
                                jax.random.key_data(jax.random.split(fast, 4)))
  np.testing.assert_array_equal(jax.random.key_data(jax.random.fold_in(key, 9)),
                                jax.random.key_data(jax.random.fold_in(fast, 9)))
  keys = jax.random.split(key, (2, 3))
  np.testing.assert_array_equal(jax.random.uniform(T.unrolled(keys)[1, 2], (6,)),
                                jax.random.uniform(keys[1, 2], (6,)))


def test_other_keys_pass_through_unchanged():
  for key in (jax.random.key(0, impl="rbg"), jax.random.PRNGKey(0)):
    assert T.unrolled(key) is key


def test_the_hash_matches_the_threefry_paper_vector():
  """Known-answer test of Salmon et al. (2011), Random123: Threefry-2x32, 20 rounds, all
  words 0xffffffff."""
  ones = np.uint32(0xFFFFFFFF)
  x = T.hash2x32(ones, ones, jnp.full((1,), ones), jnp.full((1,), ones))
  assert [hex(int(w[0])) for w in x] == ["0x1cb996fc", "0xbb002be7"]
