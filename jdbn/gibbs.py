"""Block Gibbs sampling of RBMs: one sweep as a kernel, and chains of sweeps in one ``lax.scan``.

The RBM face of the generic sampler :mod:`jdbn.samplers.gibbs` (which samples any block model):
states are :class:`ChainState` pairs ``(v, h)`` and the options speak of visible units. A sweep
samples ``h ~ p(h | v)`` and then ``v ~ p(v | h)``; both conditionals factorise over units, so
each is one matrix product and elementwise sampling (Hinton 2002). The kernel has the blackjax
shape ``(key, params, state) -> state``; many chains are ``jax.vmap`` of it and nothing more::

    keys = jax.random.split(key, 10_000)
    states = jax.vmap(lambda v: gibbs.init(params, v))(v0)          # v0: [10_000, n_visible]
    final, _ = jax.vmap(lambda k, s: gibbs.chain(k, params, s, 1000))(keys, states)

(``chain`` also works directly on a batch of states ``[n_chains, n_visible]``, which runs the
same computation as one matrix product per sweep.)
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from jdbn.models import rbm as R
from jdbn.samplers import gibbs as G

Array = jax.Array


class ChainState(NamedTuple):
  """The state of one or many chains.

  Attributes:
    v: visible states, ``[..., n_visible]``.
    h: the hidden states sampled in the last sweep (the ones ``v`` was drawn from),
      ``[..., n_hidden]``; after :func:`init`, ``E[h | v]``.
  """
  v: Array
  h: Array


def init(params: R.RBM, v0: jax.typing.ArrayLike) -> ChainState:
  """A chain state starting at visible states ``v0`` (``[..., n_visible]``)."""
  v0 = jnp.asarray(v0, params.W.dtype)
  return ChainState(v0, R.hidden_mean(params, v0))


def init_random(key: Array, params: R.RBM, n_chains: Optional[int] = None) -> ChainState:
  """Chains started from ``p(v | h = 0)`` (independent units at their biases).

  Returns a state of shape ``[n_chains, n_visible]``, or ``[n_visible]`` if ``n_chains`` is None.
  """
  if n_chains is not None and (isinstance(n_chains, bool) or not isinstance(n_chains, int)
                               or n_chains < 1):
    raise ValueError(f"n_chains must be a positive int or None, got {n_chains!r}")
  shape = () if n_chains is None else (n_chains,)
  h0 = jnp.zeros(shape + (params.n_hidden,), params.W.dtype)
  return init(params, R.sample_visible(key, params, h0))


def sweep(key: Array,
          params: R.RBM,
          state: ChainState,
          clamp: Optional[Array] = None,
          *,
          mean_visible: Union[None, bool, Array] = None) -> ChainState:
  """One block-Gibbs sweep ``v -> h ~ p(h | v) -> v' ~ p(v | h)``.

  Args:
    key: PRNG key.
    params: RBM params.
    state: current :class:`ChainState`.
    clamp: optional boolean mask broadcastable to ``[..., n_visible]``; clamped visible units keep
      their current values (labels held fixed, the known pixels when inpainting). A clamped
      Softmax group must be clamped whole.
    mean_visible: ``True``, or a boolean mask broadcastable to ``[..., n_visible]``: these
      visible units take their conditional mean ``E[v | h]`` instead of a sample (a mean-field
      reconstruction: Hinton's CD code and the up-down algorithm's label units, Hinton,
      Osindero & Teh 2006, appendix B). The result is then no longer a sample of the model;
      use it for training statistics, not for sampling. A Softmax group must be masked whole.

  Returns:
    The new :class:`ChainState`.
  """
  return G.step(key, params, state, clamp={0: clamp}, mean_field={0: mean_visible})[0]


def chain(key: Array,
          params: R.RBM,
          state: ChainState,
          n_steps: int,
          *,
          thin: Optional[int] = None,
          clamp: Optional[Array] = None,
          mean_visible: Union[None, bool, Array] = None,
          unroll: int = 1) -> tuple[ChainState, Optional[Array]]:
  """``n_steps`` sweeps in one ``lax.scan``.

  On CPUs, thousands of chains run faster when XLA:CPU compiles the products with its own dot
  kernels instead of YNNPACK fusions: ``jax.jit(f, compiler_options={
  "xla_cpu_experimental_ynn_fusion_type": ""})`` around a function that calls ``chain`` ran
  10,000 chains of a 784 x 500 RBM 1.24x as fast (100,000: 1.36x; 100 chains: the same) on a
  2-core AMD EPYC (``benchmarks/HISTORY.md``). The option is XLA:CPU's own and experimental,
  so jdbn does not set it.

  Args:
    key: PRNG key.
    params: RBM params.
    state: initial :class:`ChainState`, any leading batch shape.
    n_steps: number of sweeps (static, non-negative).
    thin: if given, also return the visible state after every ``thin``-th sweep.
    clamp: optional mask of clamped visible units, see :func:`sweep`.
    mean_visible: visible units that take their conditional mean, see :func:`sweep`.
    unroll: sweeps per iteration of the compiled loop (``lax.scan``'s ``unroll``). The samples
      are the same for every value. A single chain of a 784 x 500 RBM is dominated by the loop's
      per-iteration cost on CPUs, and ``unroll=8`` ran it 2.0x as fast; with 100 or 10,000
      chains it was 6-11% slower (``benchmarks/HISTORY.md``), so leave it at 1 for many chains.

  Returns:
    ``(final_state, trace)``; ``trace`` is ``[n_steps // thin, ..., n_visible]`` or ``None``.
  """
  return G.chain(key, params, state, n_steps, thin=thin, trace_fn=lambda s: s.v,
                 clamp={0: clamp}, mean_field={0: mean_visible}, unroll=unroll)


def sample(key: Array,
           params: R.RBM,
           n_chains: int,
           n_steps: int,
           *,
           v0: Optional[Array] = None,
           clamp: Optional[Array] = None,
           thin: Optional[int] = None,
           unroll: int = 1) -> tuple[Array, Optional[Array]]:
  """Draws ``n_chains`` samples by running chains for ``n_steps`` sweeps.

  Chains start at ``v0`` (``[n_chains, n_visible]``) if given, else at random
  (:func:`init_random`). Returns ``(v, trace)``: the final visible states and, if ``thin`` is
  given, the thinned trace (``unroll``: see :func:`chain`). Use :func:`jdbn.rbm.visible_mean` of the final ``h`` for smoother
  pictures.
  """
  if v0 is not None and (jnp.ndim(v0) != 2 or jnp.shape(v0)[0] != n_chains):
    raise ValueError(f"v0 has shape {tuple(jnp.shape(v0))} for n_chains={n_chains}; give one "
                     f"starting state per chain, [n_chains, n_visible]")
  key_init, key_run = jax.random.split(key)
  state = init_random(key_init, params, n_chains) if v0 is None else init(params, v0)
  state, trace = chain(key_run, params, state, n_steps, thin=thin, clamp=clamp, unroll=unroll)
  return state.v, trace
