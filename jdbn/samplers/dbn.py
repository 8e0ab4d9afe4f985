"""Sampling from a DBN: Gibbs chains in its top RBM, then a mean-field down pass to the data.

:func:`generate` draws (optionally class-conditional) samples from a :mod:`jdbn.models.dbn` stack,
tied or untied, with the RBM Gibbs sampler :mod:`jdbn.gibbs`. Re-exported by :mod:`jdbn.dbn`.
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp

from jdbn import gibbs
from jdbn.models import rbm as R
from jdbn.models.dbn import (DBN, _check_label_values, _parts, _top_visible, down_pass,
                             n_labels)

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


def generate(key: Array,
             model: DBN,
             labels: Optional[ArrayLike] = None,
             n_steps: int = 1000,
             *,
             n_samples: Optional[int] = None) -> Array:
  """Samples from a DBN: Gibbs chains in the top RBM, then one mean-field down pass.

  Every chain starts from ``p(v_top | h = 0)`` (labels clamped, if given) and runs ``n_steps``
  block-Gibbs sweeps (:func:`jdbn.gibbs.chain`, the label units held by a ``clamp`` mask for
  class-conditional samples, as in Hinton, Osindero & Teh 2006, section 7). The penultimate
  layer's mean given the last hidden sample, ``E[x_pen | h_top]``, is then passed down through
  the generative weights (:func:`down_pass`).

  Args:
    key: PRNG key; the same key gives the same samples.
    model: a DBN (tied, or untied after :func:`jdbn.train.updown_step.updown`).
    labels: ``[n]`` int labels to clamp (needs label units). Without it the top RBM's label
      units (if any) run freely and ``n_samples`` chains are drawn.
    n_steps: Gibbs sweeps in the top RBM (static).
    n_samples: number of chains when ``labels`` is ``None``.

  Returns:
    ``[n, n_visible]`` data-space means (pixel probabilities for Bernoulli visible units).
    Jitted (``n_steps`` and ``n_samples`` static): repeated calls with the same shapes reuse
    the compiled chain. Labels outside ``[0, n_labels)`` raise ValueError (when their values
    are known, i.e. not under the caller's own ``jit``).
  """
  if labels is not None:
    _check_label_values(labels, n_labels(_parts(model)[2]))
  return _generate(key, model, labels, n_steps, n_samples=n_samples)


@functools.partial(jax.jit, static_argnames=("n_steps", "n_samples"))
def _generate(key, model, labels, n_steps, *, n_samples):
  _, _, top = _parts(model)
  n_lab = n_labels(top)
  n_pen = top.n_visible - n_lab
  k_init, k_run = jax.random.split(key)
  clamp = None
  if labels is not None:
    if not n_lab:
      raise ValueError("labels given but the top RBM has no label units")
    labels = jnp.asarray(labels)
    if labels.ndim != 1:
      raise ValueError(f"labels must be [n] ints, got shape {tuple(labels.shape)}")
    start = gibbs.init_random(k_init, top, labels.shape[0])
    v0 = _top_visible(top, start.v[:, :n_pen], labels)
    clamp = jnp.arange(top.n_visible) >= n_pen
  else:
    if not isinstance(n_samples, int) or n_samples < 1:
      raise ValueError(f"without labels, n_samples must be a positive int, got {n_samples!r}")
    v0 = gibbs.init_random(k_init, top, n_samples).v
  state, _ = gibbs.chain(k_run, top, gibbs.init(top, v0), n_steps, clamp=clamp)
  pen = R.visible_mean(top, state.h)[..., :n_pen]
  return down_pass(model, pen)

