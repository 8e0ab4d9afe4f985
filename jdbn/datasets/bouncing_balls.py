"""The bouncing-balls videos of Sutskever, Hinton & Taylor (2009), generated in code.

``n_balls`` balls of radius ``radius`` move at constant speed in the square box
``[0, box]^2``, reflect off its walls and collide elastically with each other (equal masses: two
touching balls that approach exchange the components of their velocities along the line between
their centres, pair by pair). Each frame is rendered on a ``res x res`` grid as in the authors' generator: a
pixel at distance ``d`` from a ball's centre gets ``exp(-(d / radius)^8)``, summed over balls and
clipped to ``[0, 1]`` (a disc with a soft edge). The defaults (3 balls, radius 1.2, box 10) are
theirs; the frames are smaller (15 x 15 rather than 30 x 30) so that examples train in seconds.

Everything is a pure function of the key: the same key gives the same videos on any machine
(up to float rounding across backends), and the motion is a ``lax.scan``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Balls", "simulate", "render", "videos"]

Array = jax.Array

#: Candidate starting layouts drawn per video; the first without overlapping balls is used.
N_TRIES = 64


class Balls(NamedTuple):
  """A simulated video's ball trajectories.

  Attributes:
    positions: centres, ``[n_frames, n_balls, 2]``.
    velocities: ``[n_frames, n_balls, 2]``.
  """
  positions: Array
  velocities: Array


def _check(n_frames, n_balls, box, radius, speed, substeps):
  for name, value in (("n_frames", n_frames), ("n_balls", n_balls), ("substeps", substeps)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"{name} must be a positive int, got {value!r}")
  if not (radius > 0 and box > 2 * radius):
    raise ValueError(f"need 0 < radius < box / 2, got radius={radius}, box={box}")
  if not 0 <= speed / substeps < box - 2 * radius:
    raise ValueError(f"speed per substep must lie in [0, box - 2 radius), got {speed / substeps}")


def _start(key, n_balls, box, radius, speed):
  """Non-overlapping centres (the first of :data:`N_TRIES` uniform layouts that has none; the
  last one if all overlap) and velocities of norm ``speed`` in uniform directions."""
  k_pos, k_dir = jax.random.split(key)
  cands = jax.random.uniform(k_pos, (N_TRIES, n_balls, 2), minval=radius, maxval=box - radius)
  d = jnp.linalg.norm(cands[:, :, None] - cands[:, None], axis=-1)
  d = d + jnp.eye(n_balls) * 4 * radius
  ok = jnp.all(d > 2 * radius, axis=(1, 2))
  pos = cands[jnp.where(jnp.any(ok), jnp.argmax(ok), N_TRIES - 1)]
  angle = jax.random.uniform(k_dir, (n_balls,), maxval=2 * jnp.pi)
  return pos, speed * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)


def _move(pos, vel, dt, box, radius):
  """One substep: walls reflect, then each pair of touching balls that approach exchanges the
  velocity components along the line between their centres (pair by pair, in a fixed order, so
  that every exchange, and so the whole substep, conserves the kinetic energy)."""
  pos = pos + dt * vel
  low, high = radius, box - radius
  vel = jnp.where(pos < low, jnp.abs(vel), jnp.where(pos > high, -jnp.abs(vel), vel))
  pos = jnp.where(pos < low, 2 * low - pos, jnp.where(pos > high, 2 * high - pos, pos))
  first, second = np.triu_indices(pos.shape[0], 1)

  def pair(k, vel):
    i, j = jnp.asarray(first)[k], jnp.asarray(second)[k]
    diff = pos[i] - pos[j]
    dist = jnp.linalg.norm(diff)
    n = diff / jnp.maximum(dist, 1e-6)
    rel = jnp.dot(vel[i] - vel[j], n)
    push = jnp.where((dist < 2 * radius) & (rel < 0), rel, 0.0) * n
    return vel.at[i].add(-push).at[j].add(push)

  return pos, jax.lax.fori_loop(0, len(first), pair, vel)


def simulate(key: Array, n_frames: int, *, n_balls: int = 3, box: float = 10.0,
             radius: float = 1.2, speed: float = 0.5, substeps: int = 4) -> Balls:
  """Trajectories of one video: ``n_frames`` frames, ``substeps`` collision checks a frame.

  Args:
    key: PRNG key (the starting layout and directions).
    n_frames: frames (the first is the starting layout).
    n_balls, box, radius: the scene.
    speed: distance a ball moves per frame.
    substeps: integration steps per frame.

  Returns:
    :class:`Balls`, centres always in ``[radius, box - radius]^2``.
  """
  _check(n_frames, n_balls, box, radius, speed, substeps)
  pos, vel = _start(key, n_balls, box, radius, speed)

  def frame(carry, _):
    def sub(c, _):
      return _move(*c, 1.0 / substeps, box, radius), None
    nxt, _ = jax.lax.scan(sub, carry, None, length=substeps)
    return nxt, carry

  _, (p, v) = jax.lax.scan(frame, (pos, vel), None, length=n_frames)
  return Balls(p, v)


def render(positions: Array, res: int = 15, *, box: float = 10.0, radius: float = 1.2) -> Array:
  """Frames of ball centres: ``[..., n_balls, 2] -> [..., res * res]`` in ``[0, 1]``, row-major
  with the first coordinate as the row: ``min(1, sum_b exp(-(|p - c_b| / radius)^8))``."""
  grid = (jnp.arange(res) + 0.5) * (box / res)
  pix = jnp.stack(jnp.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)  # [res^2, 2]
  d2 = jnp.sum(jnp.square(pix[:, None, :] - positions[..., None, :, :]), -1)  # [..., res^2, b]
  return jnp.minimum(1.0, jnp.sum(jnp.exp(-jnp.square(jnp.square(d2 / radius**2))), -1))


def videos(key: Array, n_videos: int, n_frames: int, *, res: int = 15, n_balls: int = 3,
           box: float = 10.0, radius: float = 1.2, speed: float = 0.5) -> Array:
  """``n_videos`` rendered videos, ``[n_videos, n_frames, res * res]`` float32 in ``[0, 1]``;
  video ``i`` is :func:`simulate` with ``split(key, n_videos)[i]``."""
  if isinstance(n_videos, bool) or not isinstance(n_videos, (int, np.integer)) or n_videos < 1:
    raise ValueError(f"n_videos must be a positive int, got {n_videos!r}")
  if isinstance(res, bool) or not isinstance(res, (int, np.integer)) or res < 2:
    raise ValueError(f"res must be an int >= 2, got {res!r}")
  balls = jax.vmap(lambda k: simulate(k, n_frames, n_balls=n_balls, box=box, radius=radius,
                                      speed=speed))(jax.random.split(key, n_videos))
  return render(balls.positions, res, box=box, radius=radius)
