"""The bouncing-balls generator: deterministic, balls stay in the box, speed kept, frames sane."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdbn.datasets import bouncing_balls as BB


def test_same_key_same_videos_other_key_other_videos():
  a = BB.videos(jax.random.key(0), 3, 20)
  np.testing.assert_array_equal(a, BB.videos(jax.random.key(0), 3, 20))
  assert a.shape == (3, 20, 225) and a.dtype == jnp.float32
  assert float(jnp.max(jnp.abs(a - BB.videos(jax.random.key(1), 3, 20)))) > 0.5
  assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0


def test_balls_stay_in_the_box_and_keep_their_energy():
  balls = jax.vmap(lambda k: BB.simulate(k, 300))(jax.random.split(jax.random.key(2), 8))
  p = np.asarray(balls.positions)
  assert p.min() >= 1.2 - 1e-5 and p.max() <= 10 - 1.2 + 1e-5
  # Elastic walls and collisions between equal masses conserve the total kinetic energy.
  ke = np.sum(np.square(np.asarray(balls.velocities)), axis=(-1, -2))
  np.testing.assert_allclose(ke, 3 * 0.5**2, rtol=1e-4)
  # No jumps: a ball can take over others' speed in a collision, never more than all of it.
  step = np.linalg.norm(np.diff(p, axis=1), axis=-1)
  assert step.max() <= np.sqrt(3) * 0.5 + 1e-4
  start = p[:, 0]
  gaps = np.linalg.norm(start[:, :, None] - start[:, None], axis=-1) + 100 * np.eye(3)
  assert gaps.min() > 2 * 1.2  # the starting layout has no overlapping balls


def test_render_draws_a_ball_where_it_is():
  frame = BB.render(jnp.asarray([[[5.0, 5.0]]]), 15)[0].reshape(15, 15)
  assert float(frame[7, 7]) > 0.99 and float(frame[0, 0]) < 1e-6
  np.testing.assert_allclose(frame, frame.T, atol=1e-6)


def test_bad_arguments():
  with pytest.raises(ValueError, match="radius"):
    BB.simulate(jax.random.key(0), 5, radius=6.0)
  with pytest.raises(ValueError, match="n_frames"):
    BB.videos(jax.random.key(0), 2, 0)
