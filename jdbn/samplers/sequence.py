"""Sampling a conditional RBM: ``y ~ p(y | x)``, and sequences rolled forward in ``lax.scan``.

A CRBM of order ``n`` over frames of ``d`` values takes as context the ``n`` previous frames,
oldest first, flattened: ``x_t = [y_{t-n}, ..., y_{t-1}]`` (``n_context = n d``), as in Taylor,
Hinton & Roweis (2007). :func:`windows` cuts training pairs ``v_t = [x_t | y_t]`` out of
sequences; :func:`generate` starts from a history of ``n`` frames and repeats: draw the next
frame by ``k`` Gibbs sweeps with the context fixed (optionally its mean given the last sweep's
hidden states), append it, slide the window.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jdbn.models import crbm as C
from jdbn.samplers import gibbs as G

__all__ = ["sample", "windows", "generate"]

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


def _check_int(value, name, low):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
  return int(value)


def sample(key: Array, params: C.CRBM, x: ArrayLike, n_steps: int, *,
           y0: Optional[ArrayLike] = None, mean_last: bool = False) -> Array:
  """``y ~ p(y | x)`` by ``n_steps`` Gibbs sweeps with the context fixed (one ``lax.scan``).

  Args:
    key: PRNG key, given to :func:`jdbn.samplers.gibbs.chain` as it is.
    params: CRBM params.
    x: contexts, ``[..., n_context]``; one chain per context.
    n_steps: sweeps (``h ~ p(h | y, x)``, then ``y ~ p(y | h, x)``), at least 1.
    y0: the chains' starting outputs ``[..., n_visible]`` (default zeros).
    mean_last: return ``E[y | h, x]`` given the last sweep's ``h`` instead of its sample (Taylor
      et al. 2007 show mean frames this way).

  Returns:
    ``[..., n_visible]``.
  """
  n_steps = _check_int(n_steps, "n_steps", 1)
  y0 = jnp.zeros((params.n_visible,), params.W.dtype) if y0 is None else y0
  v = C.join(params, x, y0)
  h = jnp.zeros(v.shape[:-1] + (params.n_hidden,), params.W.dtype)
  v, h = G.chain(key, params, (v, h), n_steps)[0]
  if mean_last:
    return C.visible_mean(params, v[..., :params.n_context], h)
  return v[..., params.n_context:]


def _check_frames(frames, order, name):
  frames = jnp.asarray(frames)
  if frames.ndim < 2:
    raise ValueError(f"{name} must have shape [..., n_frames, frame_size], got "
                     f"{tuple(frames.shape)}")
  if frames.shape[-2] < order:
    raise ValueError(f"{name} has {frames.shape[-2]} frames, fewer than the history of {order} "
                     f"frames the model conditions on")
  if not isinstance(frames, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(frames))):
    raise ValueError(f"{name} contains NaN or inf values")
  return frames


def windows(frames: ArrayLike, order: int) -> Array:
  """Training pairs ``v_t = [y_{t-order}, ..., y_{t-1} | y_t]`` from sequences.

  Args:
    frames: ``[..., T, d]`` sequences (``T > order``).
    order: frames of history (``n_context = order * d``).

  Returns:
    ``[..., T - order, (order + 1) d]``: every window of ``order + 1`` consecutive frames,
    flattened oldest first (the layout :func:`jdbn.models.crbm.join` expects).
  """
  order = _check_int(order, "order", 1)
  frames = _check_frames(frames, order + 1, "frames")
  T, d = frames.shape[-2:]
  idx = np.arange(T - order)[:, None] + np.arange(order + 1)[None, :]
  return frames[..., idx, :].reshape(frames.shape[:-2] + (T - order, (order + 1) * d))


def generate(key: Array, params: C.CRBM, history: ArrayLike, n_frames: int, *, k: int = 30,
             mean_last: bool = True, y_init: str = "last") -> Array:
  """Rolls a CRBM forward: ``n_frames`` new frames after ``history``, in one ``lax.scan``.

  Args:
    key: PRNG key; frame ``t`` uses ``split(key, n_frames)[t]``.
    params: a CRBM whose context is ``order`` frames of ``d = n_visible`` values.
    history: ``[..., T, d]`` with ``T >= order``; the last ``order`` frames start the roll.
    n_frames: frames to generate (static, >= 1).
    k: Gibbs sweeps per frame with the context fixed.
    mean_last: each new frame is ``E[y | h, x]`` of the last sweep (the frame that is fed back
      too), else the last sweep's sample.
    y_init: where each frame's chain starts: ``"last"`` (the previous frame) or ``"zeros"``.

  Returns:
    ``[..., n_frames, d]``.
  """
  d = params.n_visible
  if params.n_context % d:
    raise ValueError(f"a sequence CRBM's context is a whole number of frames: n_context="
                     f"{params.n_context} is not a multiple of the frame size {d}")
  order = params.n_context // d
  n_frames = _check_int(n_frames, "n_frames", 1)
  k = _check_int(k, "k", 1)
  if y_init not in ("last", "zeros"):
    raise ValueError(f"y_init must be 'last' or 'zeros', got {y_init!r}")
  history = _check_frames(history, order, "history")
  if history.shape[-1] != d:
    raise ValueError(f"history frames have {history.shape[-1]} values, the model's {d}")
  window = history[..., -order:, :].astype(params.W.dtype)

  def body(win, key_t):
    x = win.reshape(win.shape[:-2] + (order * d,))
    y0 = win[..., -1, :] if y_init == "last" else jnp.zeros_like(win[..., -1, :])
    y = sample(key_t, params, x, k, y0=y0, mean_last=mean_last)
    return jnp.concatenate([win[..., 1:, :], y[..., None, :]], -2), y

  _, out = jax.lax.scan(body, window, jax.random.split(key, n_frames))
  return jnp.moveaxis(out, 0, -2)
