"""Estimate a small RBM's log Z by AIS with its ln(Z +/- 3 se) bounds; compare with the exact one.

Shows: `jdbn.likelihood.ais` (annealed importance sampling, Neal 2001, from a base model with the
data's pixel rates, as Salakhutdinov & Murray 2008 did) and its bounds; `jdbn.likelihood.
exact_log_z`, which sums over the 2^n_hidden states of the hidden layer; and the test
log-likelihood in nats that each gives. AIS tends to underestimate log Z (so to overestimate the
log-likelihood); the bounds are on Z's estimate, so for a model this small they should hold the
exact value. A small effective sample size (a few runs carry all the weight) warns that the
estimate is not to be trusted: use more temperatures or runs.

Run (from the repository root, jdbn installed):
  python examples/ais.py     # 64-20 RBM on the 8x8 digits, 1,000 chains, 14,500 temperatures: 20 s
  python examples/ais.py --n-hidden 10 --n-chains 100 --n-betas 1000                    # tiny
  JDBN_MNIST_DIR=/path/to/mnist python examples/ais.py --dataset mnist  # 784-20 RBM on MNIST
"""

import argparse

import jax
import jax.numpy as jnp
import optax

from jdbn import contrastive, data, likelihood, rbm


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
  p.add_argument("--n-hidden", type=int, default=20, help="at most ~25: exact log Z")
  p.add_argument("--epochs", type=int, default=20)
  p.add_argument("--n-chains", type=int, default=1000, help="AIS runs")
  p.add_argument("--n-betas", type=int, default=0,
                 help="temperatures, evenly spaced; 0: Salakhutdinov & Murray's 14,500")
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args()

  train_set, test_set = data.load(args.dataset, "train"), data.load(args.dataset, "test")
  x, x_test = data.binarize(train_set.x), data.binarize(test_set.x)
  key_init, key_pcd, key_fit, key_ais = jax.random.split(jax.random.key(args.seed), 4)
  trainer = contrastive.pcd(optax.sgd(0.01, momentum=0.9), n_chains=100)
  state = trainer.init(key_pcd, rbm.init(key_init, x.shape[1], args.n_hidden, data=x))
  for epoch in range(args.epochs):                  # each epoch: one jit, one lax.scan
    state, _ = trainer.epoch(jax.random.fold_in(key_fit, epoch), state, x, 20, metrics=False)
  params = state.params
  print(f"trained a {x.shape[1]}-{args.n_hidden} RBM on {len(x)} {args.dataset} images "
        f"for {args.epochs} epochs")

  # AIS: n_chains annealing runs from the base model (visible biases = the data's log-odds,
  # no weights) to the RBM, through the inverse temperatures betas (0 -> 1).
  if args.n_betas == 0:
    betas = likelihood.default_betas()   # steps of 1e-3 to 0.5, 1e-4 to 0.9, 1e-5 to 1
  else:
    betas = jnp.linspace(0.0, 1.0, args.n_betas + 1)
  res = likelihood.ais(key_ais, params, n_chains=args.n_chains, betas=betas, data=x)
  exact = likelihood.exact_log_z(params)
  inside = bool(res.log_z_lower <= exact <= res.log_z_upper)
  print(f"AIS   log Z = {res.log_z:.4f}   ln(Z -/+ 3 se) = [{res.log_z_lower:.4f}, "
        f"{res.log_z_upper:.4f}]   ({args.n_chains} chains, {len(betas) - 1} "
        f"temperatures, effective sample size {res.ess:.0f})")
  print(f"exact log Z = {exact:.4f}   ({2**args.n_hidden:,} hidden states summed)")
  print(f"AIS - exact = {res.log_z - exact:+.4f}; bounds hold the exact value: {inside}")

  # Test log-likelihood, log p(v) = -F(v) - log Z, in nats per image.
  test_ais = likelihood.log_likelihood(params, x_test, res.log_z).mean()
  test_exact = likelihood.log_likelihood(params, x_test, exact).mean()
  print(f"test log-likelihood: {test_ais:.3f} nats with AIS's log Z, {test_exact:.3f} exact "
        f"({len(x_test)} {args.dataset} test images)")


if __name__ == "__main__":
  main()
