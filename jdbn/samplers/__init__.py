"""Samplers over any :class:`jdbn.models.base.BlockModel`, as blackjax-style kernels.

A kernel is ``step(key, model, state, ...) -> (state, info)``, key first, pure; a chain is
``n`` steps in one ``lax.scan``; many chains are ``jax.vmap`` over keys and states.

* :mod:`jdbn.samplers.gibbs`: block Gibbs over the model's schedule (or any other), with
  clamping and mean-field updates of any block.
* :mod:`jdbn.samplers.tempering`: parallel tempering, replicas of the model's tempered copies with
  Metropolis swaps between neighbours.
* :mod:`jdbn.samplers.recall`: recall dynamics of associative memories (Hopfield nets, dense and
  modern Hopfield memories): asynchronous and synchronous zero-temperature recall to a fixed
  point, Glauber dynamics at an inverse temperature.
* :mod:`jdbn.samplers.sequence`: a conditional RBM's ``y ~ p(y | x)`` with the context fixed,
  and sequences rolled forward in ``lax.scan``.
"""

from jdbn.samplers import gibbs, recall, sequence, tempering  # noqa: F401

__all__ = ["gibbs", "recall", "sequence", "tempering"]
