"""Recall dynamics of associative memories, batched over probes with ``vmap``.

* :func:`async_recall`: zero-temperature asynchronous recall of a Hopfield net
  (:mod:`jdbn.models.hopfield`) or a dense associative memory (:mod:`jdbn.models.dense_memory`):
  one unit at a time is set to its state of lower energy (the model's ``update_unit``), so the
  energy never rises and recall stops at a fixed point (a local minimum).
* :func:`sync_recall`: every unit of a Hopfield net at once, ``s <- sign(W s - theta)``; it has
  no such energy and may end in a 2-cycle (Bruck 1990).
* :func:`glauber`: Glauber dynamics at inverse temperature ``beta``, which samples the Gibbs
  measure ``p(s) ∝ exp(-beta E(s))``: ``p(s_i = +1 | rest) = sigmoid(2 beta h_i)``
  (``sigmoid(beta h_i)`` for ``{0, 1}`` units).
* :func:`modern_recall`: the modern Hopfield update ``xi <- X^T softmax(beta X xi)``
  (Ramsauer et al. 2020) iterated to a fixed point.

Every recall is one ``lax.while_loop`` of sweeps per probe (``lax.scan`` when the energy is traced,
so that a user can follow it along recall), each asynchronous sweep a ``lax.scan`` over units.
Probes are ``[..., n]`` with any leading shape; random update orders take a key per probe, split
from the one key given.

References:
  Hopfield (1982), "Neural networks and physical systems with emergent collective computational
  abilities", PNAS 79.
  Bruck (1990), "On the convergence properties of the Hopfield model", Proc. IEEE 78.
  Glauber (1963), "Time-dependent statistics of the Ising model", J. Math. Phys. 4.
  Ramsauer et al. (2020), "Hopfield networks is all you need", arXiv:2008.02217 (ICLR 2021).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from jdbn.models import dense_memory as D
from jdbn.models import hopfield as H

Array = jax.Array
Memory = Union[H.Hopfield, D.DenseMemory]

__all__ = ["Recall", "async_sweep", "async_recall", "sync_recall", "glauber", "modern_recall"]


class Recall(NamedTuple):
  """The result of a recall, batched like the probes ``[..., n]``.

  Attributes:
    state: ``[..., n]`` the final state.
    n_sweeps: ``[...]`` int32: sweeps (or synchronous steps) run, counting the last one, which
      changed nothing if ``converged``; a probe that is already a fixed point takes 1.
    converged: ``[...]`` bool: whether the final state is a fixed point of the dynamics.
    energies: ``[..., max_sweeps + 1]``: the energy of the probe and after each sweep (repeated
      after convergence) if ``trace`` was asked for, else ``None``.
  """
  state: Array
  n_sweeps: Array
  converged: Array
  energies: Optional[Array] = None


def _iterate(step: Callable, energy_fn: Callable, s0: Array, key: Array, max_sweeps: int,
             trace: bool, changed: Optional[Callable] = None) -> Recall:
  """Runs ``s <- step(s, key_t)`` on one probe until ``s`` stops changing or ``max_sweeps``.

  Sweep ``t`` (from 0) uses ``fold_in(key, t)``, with and without the trace. ``changed(new,
  old)`` says whether a step moved (default: any element differs).
  """
  changed = (lambda new, s: jnp.any(new != s)) if changed is None else changed

  def advance(s, n, done):
    new = step(s, jax.random.fold_in(key, n))
    still = changed(new, s)
    return jnp.where(done, s, new), n + (~done).astype(jnp.int32), done | ~still

  init = (s0, jnp.int32(0), jnp.bool_(False))
  if trace:

    def body(carry, _):
      carry = advance(*carry)
      return carry, energy_fn(carry[0])

    (s, n, done), es = jax.lax.scan(body, init, None, length=max_sweeps)
    return Recall(s, n, done, jnp.concatenate([energy_fn(s0)[None], es]))
  s, n, done = jax.lax.while_loop(lambda c: (~c[2]) & (c[1] < max_sweeps),
                                  lambda c: advance(*c), init)
  return Recall(s, n, done, None)


def _batched(run: Callable, key: Optional[Array], s: Array) -> Recall:
  """``vmap`` of ``run(key, s_row)`` over the leading axes of ``s``, a key per probe."""
  batch = s.shape[:-1]
  flat = s.reshape((-1, s.shape[-1]))
  keys = jax.random.split(jax.random.key(0) if key is None else key, flat.shape[0])
  out = jax.vmap(run)(keys, flat)
  return jax.tree_util.tree_map(lambda x: x.reshape(batch + x.shape[1:]), out)


def _check_run(max_sweeps, order, key, name="max_sweeps"):
  if isinstance(max_sweeps, bool) or not isinstance(max_sweeps, (int, np.integer)) or (
      max_sweeps < 1):
    raise ValueError(f"{name} must be an int >= 1, got {max_sweeps!r}")
  if order not in ("random", "fixed"):
    raise ValueError(f"order must be 'random' or 'fixed', got {order!r}")
  if order == "random" and key is None:
    raise ValueError("order='random' needs a PRNG key (or pass order='fixed' with key=None)")


def _rule(memory: Memory) -> tuple:
  """``(update_unit, energy, units, dtype)`` of a memory recalled one unit at a time."""
  if isinstance(memory, H.Hopfield):
    return H.update_unit, H.energy, memory.units, memory.W.dtype
  if isinstance(memory, D.DenseMemory):
    return D.update_unit, D.energy, H.Spin(), memory.patterns.dtype
  raise TypeError(f"async_recall needs a Hopfield net or a DenseMemory, got "
                  f"{type(memory).__name__}")


def async_sweep(key: Optional[Array], n: int, update: Callable, s: Array,
                order: str = "random") -> Array:
  """One asynchronous sweep of one probe ``s: [n]``: ``s_i <- update(s, i)`` for each unit.

  The order is a fresh permutation from ``key`` (``order="random"``) or ``0..n-1``. Shared by
  the classical and the dense associative memories.
  """
  idx = jax.random.permutation(key, n) if order == "random" else jnp.arange(n)

  def body(s, i):
    return s.at[i].set(update(s, i)), None

  return jax.lax.scan(body, s, idx)[0]


def async_recall(key: Optional[Array],
                 memory: Memory,
                 probes: jax.typing.ArrayLike,
                 *,
                 order: str = "random",
                 max_sweeps: int = 100,
                 trace: bool = False) -> Recall:
  """Asynchronous zero-temperature recall: one unit at a time takes its lower-energy state.

  For a Hopfield net that is ``s_i <- sign(h_i)`` (:func:`jdbn.models.hopfield.update_unit`),
  for a dense memory :func:`jdbn.models.dense_memory.update_unit`; a tie keeps ``s_i``. Each
  sweep visits every unit once, in a fresh random order per sweep and per probe
  (``order="random"``, from ``key``) or in index order (``order="fixed"``, ``key`` may be
  ``None``), and recall stops at the first sweep that changes nothing (a fixed point: the energy
  never rises and so a fixed point is always reached; ``max_sweeps`` caps the work).

  Args:
    key: PRNG key (``None`` allowed with ``order="fixed"``).
    memory: a :class:`jdbn.models.hopfield.Hopfield` net or a
      :class:`jdbn.models.dense_memory.DenseMemory`.
    probes: ``[..., n]`` initial states in the memory's alphabet.
    order: ``"random"`` or ``"fixed"``.
    max_sweeps: the most sweeps per probe (static).
    trace: also return the memory's energy after every sweep (``[..., max_sweeps + 1]``).

  Returns:
    :class:`Recall`.
  """
  _check_run(max_sweeps, order, key)
  _, _, units, dtype = _rule(memory)
  H.check_states(probes, units, memory.n, "probes")
  key = jax.random.key(0) if key is None else key  # not read with order="fixed"
  probes = jnp.asarray(probes, dtype)
  # Flat probes: every batch shape with as many probes shares one compiled recall.
  out = _async_recall(key, memory, probes.reshape((-1, memory.n)), order, int(max_sweeps), trace)
  return jax.tree_util.tree_map(lambda x: x.reshape(probes.shape[:-1] + x.shape[1:]), out)


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _async_recall(key, memory, probes, order, max_sweeps, trace):
  update_unit, energy, _, _ = _rule(memory)
  update = functools.partial(update_unit, memory)

  def run(k, s):
    return _iterate(lambda s, k: async_sweep(k, memory.n, update, s, order),
                    lambda s: energy(memory, s), s, k, max_sweeps, trace)

  return _batched(run, key, probes)


def sync_recall(net: H.Hopfield,
                probes: jax.typing.ArrayLike,
                *,
                max_steps: int = 100,
                trace: bool = False) -> Recall:
  """Synchronous recall: ``s <- sign(W s - theta)`` for every unit at once (zero field keeps).

  Stops when ``s`` stops changing or after ``max_steps``. The energy
  :func:`jdbn.models.hopfield.energy` need not fall along the way and the dynamics may end in a
  2-cycle (then ``converged`` is ``False``); the energies are traced all the same.

  Args:
    net: the network.
    probes: ``[..., n]`` initial states.
    max_steps: the most steps (static).
    trace: also return the energy after every step.
  """
  _check_run(max_steps, "fixed", None, "max_steps")
  H.check_states(probes, net.units, net.n, "probes")
  return _sync_recall(net, jnp.asarray(probes, net.W.dtype), int(max_steps), trace)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _sync_recall(net, probes, max_steps, trace):

  def run(k, s):
    return _iterate(lambda s, _: H.update_all(net, s), lambda s: H.energy(net, s), s, k,
                    max_steps, trace)

  return _batched(run, None, probes)


def glauber(key: Array,
            net: H.Hopfield,
            states: jax.typing.ArrayLike,
            beta: jax.typing.ArrayLike,
            n_sweeps: int,
            *,
            order: str = "random") -> Array:
  """Stochastic recall: ``n_sweeps`` sweeps of Glauber dynamics at inverse temperature ``beta``.

  Unit ``i`` is drawn from its conditional under ``p(s) ∝ exp(-beta E(s))``:
  ``p(s_i = high | rest) = sigmoid(beta (high - low) h_i)``, one unit at a time in a random
  (per sweep and per chain) or fixed order. Either order leaves the Gibbs measure invariant, so
  long runs sample it (Glauber 1963); ``beta -> inf`` is :func:`async_recall`.

  Args:
    key: PRNG key; chain ``c`` uses ``split(key, n_chains)[c]`` and sweep ``t`` of it
      ``fold_in`` of that with ``t``.
    net: the network.
    states: ``[..., n]`` initial states.
    beta: inverse temperature (scalar, may be traced).
    n_sweeps: number of sweeps (static).
    order: ``"random"`` or ``"fixed"``.

  Returns:
    ``[..., n]`` the final states.
  """
  if isinstance(n_sweeps, bool) or not isinstance(n_sweeps, (int, np.integer)) or n_sweeps < 0:
    raise ValueError(f"n_sweeps must be an int >= 0, got {n_sweeps!r}")
  _check_run(1, order, key)
  H.check_states(states, net.units, net.n, "states")
  states = jnp.asarray(states, net.W.dtype)
  beta = jnp.asarray(beta, net.W.dtype)
  if not isinstance(beta, jax.core.Tracer) and not np.isfinite(np.asarray(beta)):
    raise ValueError(f"beta must be finite, got {beta}")
  return _glauber(key, net, states, beta, int(n_sweeps), order)


@functools.partial(jax.jit, static_argnums=(4, 5))
def _glauber(key, net, states, beta, n_sweeps, order):
  lo, hi = net.levels

  def run(k, s):

    def sweep(s, t):
      ko, ku = jax.random.split(jax.random.fold_in(k, t))
      idx = jax.random.permutation(ko, net.n) if order == "random" else jnp.arange(net.n)
      us = jax.random.uniform(ku, (net.n,), s.dtype)  # the k-th update of the sweep reads us[k]

      def body(s, iu):
        i, u = iu
        p_high = jax.nn.sigmoid(beta * (hi - lo) * (s @ net.W[:, i] - net.theta[i]))
        return s.at[i].set(jnp.where(u < p_high, hi, lo).astype(s.dtype)), None

      return jax.lax.scan(body, s, (idx, us))[0], None

    return jax.lax.scan(sweep, s, jnp.arange(n_sweeps))[0]

  return _batched(run, key, states)


def modern_recall(mem: D.ModernHopfield,
                  probes: jax.typing.ArrayLike,
                  *,
                  max_steps: int = 100,
                  tol: float = 1e-6,
                  trace: bool = False) -> Recall:
  """Repeated :func:`jdbn.models.dense_memory.modern_update` until a step moves no coordinate by
  more than ``tol`` (or ``max_steps``), in one ``lax.while_loop`` (``lax.scan`` with ``trace``)
  per probe, ``vmap``-ed (Ramsauer et al. 2020).

  Args:
    mem: the network.
    probes: ``[..., d]`` initial states.
    max_steps: the most updates (static).
    tol: the fixed-point tolerance on ``max |xi_new - xi|``.
    trace: also return :func:`jdbn.models.dense_memory.modern_energy` of the probe and after
      each step.

  Returns:
    :class:`Recall` (``n_sweeps`` counts updates).
  """
  _check_run(max_steps, "fixed", None, "max_steps")
  return _modern_recall(mem, D.check_query(mem, probes), jnp.asarray(tol, mem.patterns.dtype),
                        int(max_steps), trace)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _modern_recall(mem, probes, tol, max_steps, trace):

  def step(xi, _):
    return jax.nn.softmax(mem.beta * (mem.patterns @ xi)) @ mem.patterns

  def run(k, xi):
    return _iterate(step, lambda xi: D.modern_energy(mem, xi), xi, k, max_steps, trace,
                    changed=lambda new, xi: jnp.max(jnp.abs(new - xi)) > tol)

  return _batched(run, None, probes)
