"""Train and sample an RBM over many devices with `jax.sharding`: data-parallel PCD, sharded chains.

Shows: `jdbn.parallel.make_mesh` (a 1-D mesh over every device); `parallel.data_parallel`, which
replicates the params, splits every batch and PCD's persistent chains over the devices and lets
XLA insert the gradient's all-reduce; `parallel.sample_sharded` and `parallel.ais_sharded`, whose
chains are split over the devices with no communication; where each array lives (`.sharding`,
`.addressable_shards`); and that one key gives the same samples on any number of devices.
Batch sizes and chain counts must be multiples of the number of devices.

Run (from the repository root, jdbn installed):
  python examples/sharding.py             # on the devices there are (one CPU: 1 device), 30 s
  XLA_FLAGS=--xla_force_host_platform_device_count=4 python examples/sharding.py   # 4 CPU devices
  python examples/sharding.py --epochs 1 --n-chains 64 --n-steps 10 --n-betas 100      # tiny
"""

import argparse

import jax
import jax.numpy as jnp
import optax

from jdbn import contrastive, data, gibbs, likelihood, parallel, rbm


def where(x: jax.Array) -> str:
  """Which part of ``x`` each device holds, e.g. ``cpu:0 [0:250], cpu:1 [250:500]``."""
  def rows(index):
    return "all" if index[0] == slice(None) else f"[{index[0].start}:{index[0].stop}]"
  return ", ".join(f"{s.device.platform}:{s.device.id} {rows(s.index)}"
                   for s in x.addressable_shards)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--n-hidden", type=int, default=100)
  p.add_argument("--epochs", type=int, default=20)
  p.add_argument("--batch-size", type=int, default=40, help="a multiple of the device count")
  p.add_argument("--n-chains", type=int, default=1000, help="a multiple of the device count")
  p.add_argument("--n-steps", type=int, default=1000, help="Gibbs sweeps per sample")
  p.add_argument("--n-betas", type=int, default=10_000, help="AIS temperatures")
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args()

  mesh = parallel.make_mesh()                                  # every device, one "data" axis
  print(f"{mesh.size} device(s): {', '.join(str(d) for d in mesh.devices.flat)}")
  x = data.binarize(data.load_digits("train").x)               # [1500, 64]
  x_test = data.binarize(data.load_digits("test").x)
  keys = jax.random.split(jax.random.key(args.seed), 5)
  key_init, key_pcd, key_train, key_sample, key_ais = keys

  # Data-parallel PCD: the same trainer, wrapped; each batch is split over the devices.
  pcd = contrastive.pcd(optax.sgd(0.01, momentum=0.9), n_chains=args.batch_size)
  trainer = parallel.data_parallel(pcd, mesh)
  state = trainer.init(key_pcd, rbm.init(key_init, 64, args.n_hidden, data=x))
  for epoch in range(args.epochs):
    state, info = trainer.epoch(jax.random.fold_in(key_train, epoch), state, x,
                                batch_size=args.batch_size)
  print(f"trained a 64-{args.n_hidden} RBM for {args.epochs} epochs, reconstruction error "
        f"{info.recon_error:.4f}")
  print(f"  params W {state.params.W.shape}: {where(state.params.W)}")
  print(f"  PCD chains v {state.chains.v.shape}: {where(state.chains.v)}")

  # Sampling: chains split over the devices; the same key gives the one-device samples.
  params = state.params
  v, _ = parallel.sample_sharded(key_sample, params, args.n_chains, args.n_steps, mesh)
  print(f"sampled {args.n_chains} chains x {args.n_steps} sweeps, v {v.shape}: {where(v)}")
  v_one, _ = gibbs.sample(key_sample, jax.device_get(params), args.n_chains, args.n_steps)
  print(f"  same samples as on one device: {bool(jnp.all(v == v_one))}")

  # AIS: the annealing runs split over the devices, only the final weights' summary reduced.
  res = parallel.ais_sharded(key_ais, params, mesh, n_chains=args.n_chains, data=x,
                             betas=jnp.linspace(0.0, 1.0, args.n_betas + 1))
  test_ll = likelihood.log_likelihood(params, x_test, res.log_z).mean()
  print(f"AIS log Z = {res.log_z:.4f}  ln(Z -/+ 3 se) = [{res.log_z_lower:.4f}, "
        f"{res.log_z_upper:.4f}]; test log-likelihood {test_ll:.3f} nats")


if __name__ == "__main__":
  main()
