"""Run 10,000 Gibbs chains of an RBM at once with `jax.vmap`; time them and check what they sample.

Shows: one chain is `jdbn.gibbs.chain(key, params, state, n_steps)` (one `lax.scan`); many chains
are `jax.vmap` of that function over keys and start states, compiled once by `jax.jit`, nothing
more. The RBM (64 visible units, trained for a few seconds on the embedded 8x8 digits) is small
enough that the exact pixel marginals p(v_i = 1) can be summed over all 2^n_hidden hidden states,
so the chains' marginals are checked against the exact ones (z-scores, about N(0, 1) once the
chains have mixed). The PRNG is a choice: `--prng philox4x32` is faster on CPUs.

Run (from the repository root, jdbn installed):
  python examples/many_chains.py                  # 10,000 x 1,000 sweeps, 20 s on 2 CPU cores
  python examples/many_chains.py --n-chains 1000 --n-steps 100                 # tiny
"""

import argparse
import time

import jax
import jax.numpy as jnp
import optax

from jdbn import contrastive, data, gibbs, likelihood, rbm


def exact_marginals(params: rbm.RBM) -> jax.Array:
  """``E[v] = sum_h p(h) E[v | h]`` over every hidden state: ``[n_visible]`` (small n_hidden)."""
  n = params.n_hidden
  hs = ((jnp.arange(2**n)[:, None] >> jnp.arange(n)) & 1).astype(params.W.dtype)   # [2^n, n]
  p_h = jnp.exp(-rbm.free_energy_hidden(params, hs) - likelihood.exact_log_z(params))
  return p_h @ rbm.visible_mean(params, hs)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--n-chains", type=int, default=10_000)
  p.add_argument("--n-steps", type=int, default=1000, help="Gibbs sweeps per chain")
  p.add_argument("--n-hidden", type=int, default=16, help="at most ~20: exact marginals")
  p.add_argument("--epochs", type=int, default=20, help="PCD epochs on the digits first")
  p.add_argument("--prng", default="threefry2x32", help="e.g. philox4x32 (faster on CPUs)")
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args()

  key_init, key_pcd, key_fit, key_start, key_run, key_again = jax.random.split(
      jax.random.key(args.seed, impl=args.prng), 6)
  x = data.binarize(data.load_digits("train").x)                      # [1500, 64]
  trainer = contrastive.pcd(optax.sgd(0.01, momentum=0.9), n_chains=100)
  state = trainer.init(key_pcd, rbm.init(key_init, 64, args.n_hidden, data=x))
  for epoch in range(args.epochs):                  # each epoch: one jit, one lax.scan
    state, _ = trainer.epoch(jax.random.fold_in(key_fit, epoch), state, x, 20, metrics=False)
  params = state.params

  def one_chain(params, key, start):          # one chain: a ChainState of [64] and [n_hidden]
    final, _ = gibbs.chain(key, params, start, args.n_steps)
    return final.v

  # Many chains: vmap over keys and start states (params shared, in_axes=None), one jit.
  many_chains = jax.jit(jax.vmap(one_chain, in_axes=(None, 0, 0)))
  starts = gibbs.init_random(key_start, params, args.n_chains)         # v: [n_chains, 64]
  t0 = time.perf_counter()
  v = many_chains(params, jax.random.split(key_run, args.n_chains), starts).block_until_ready()
  compile_and_run = time.perf_counter() - t0
  t0 = time.perf_counter()                    # again, compiled: the sampling speed alone
  v = many_chains(params, jax.random.split(key_again, args.n_chains), starts).block_until_ready()
  seconds = time.perf_counter() - t0
  sweeps = args.n_chains * args.n_steps
  print(f"{args.n_chains} chains x {args.n_steps} sweeps of a 64-{args.n_hidden} RBM "
        f"({jax.devices()[0].platform}, {args.prng}): {seconds:.3f} s, "
        f"{sweeps / seconds:,.0f} samples/s (first call with compilation {compile_and_run:.2f} s)")

  # A statistic of the chains: each pixel's mean over the chains against the exact marginal.
  exact = exact_marginals(params)
  chains = jnp.mean(v, axis=0)
  se = jnp.sqrt(exact * (1 - exact) / args.n_chains)
  z = (chains - exact) / se
  print(f"pixel marginals: max |chains - exact| = {float(jnp.max(jnp.abs(chains - exact))):.4f}, "
        f"max |z| = {float(jnp.max(jnp.abs(z))):.2f} over {z.size} pixels, "
        f"mean z^2 = {float(jnp.mean(z**2)):.2f} (1 when the chains sample the model)")


if __name__ == "__main__":
  main()
