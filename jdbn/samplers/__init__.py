"""Samplers over any :class:`jdbn.models.base.BlockModel`, as blackjax-style kernels.

A kernel is ``step(key, model, state, ...) -> (state, info)``, key first, pure; a chain is
``n`` steps in one ``lax.scan``; many chains are ``jax.vmap`` over keys and states.

* :mod:`jdbn.samplers.gibbs`: block Gibbs over the model's schedule (or any other), with
  clamping and mean-field updates of any block.
"""

from jdbn.samplers import gibbs  # noqa: F401
