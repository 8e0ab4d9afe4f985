"""Train a Bernoulli RBM on MNIST with PCD or CD-k; save pictures of its filters and samples.

Shows: loading MNIST with `jdbn.data`; PCD or CD-k as `jdbn.contrastive` trainers whose updates
an Optax chain applies (weight decay, SGD with momentum); the library's training loop
`jdbn.train.fit` (one jitted `lax.scan` per epoch, monitoring metrics); Gibbs chains with
`jdbn.gibbs.chain`; the picture helpers of `jdbn.viz`.

MNIST comes from the four IDX files in $JDBN_MNIST_DIR, else from TFDS; when neither works the
script says so and trains on the embedded 8x8 digits instead. (Offline and without the IDX files,
TFDS retries its downloads for about 3.5 minutes before giving up: `--dataset digits` skips it.)

Run (from the repository root, jdbn installed):
  JDBN_MNIST_DIR=/path/to/mnist python examples/rbm_mnist.py --out /tmp/rbm_mnist   # 40 s, 2 CPUs
  python examples/rbm_mnist.py --n-hidden 16 --epochs 1 --n-train 1000 --sample-steps 10  # tiny
"""

import argparse
import pathlib

import jax
import optax

from jdbn import contrastive, data, gibbs, rbm, train, viz


def load_data(name: str, n_train: int) -> data.Dataset:
  """The first ``n_train`` training images of MNIST, or of the embedded digits as a fallback."""
  try:
    ds = data.load(name, "train")
  except (FileNotFoundError, RuntimeError) as err:
    print(f"MNIST unavailable ({type(err).__name__}: {err}); using the embedded 8x8 digits "
          "instead (set JDBN_MNIST_DIR to a folder of the MNIST IDX files)")
    ds = data.load_digits("train")
  return data.Dataset(ds.x[:n_train], ds.y[:n_train], ds.image_shape)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--dataset", choices=("mnist", "digits"), default="mnist")
  p.add_argument("--n-hidden", type=int, default=500)
  p.add_argument("--epochs", type=int, default=10)
  p.add_argument("--n-train", type=int, default=60_000, help="use the first N training images")
  p.add_argument("--batch-size", type=int, default=100)
  p.add_argument("--lr", type=float, default=0.01)
  p.add_argument("--method", choices=("pcd", "cd"), default="pcd")
  p.add_argument("-k", type=int, default=1, help="Gibbs sweeps per update")
  p.add_argument("--weight-decay", type=float, default=2e-4)
  p.add_argument("--n-samples", type=int, default=100)
  p.add_argument("--sample-steps", type=int, default=1000, help="Gibbs sweeps per sample")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="rbm_mnist_out", help="folder for filters.png, samples.png")
  args = p.parse_args()

  ds = load_data(args.dataset, args.n_train)
  x = data.binarize(ds.x)                                   # [n, 784] in {0, 1}
  print(f"training a {x.shape[1]}-{args.n_hidden} RBM with {args.method.upper()}-{args.k} on "
        f"{len(x)} images of {ds.image_shape[0]}x{ds.image_shape[1]} for {args.epochs} epochs")

  key_init, key_fit, key_sample = jax.random.split(jax.random.key(args.seed), 3)
  params = rbm.init(key_init, x.shape[1], args.n_hidden, data=x)   # visible biases from data
  optimizer = optax.chain(optax.add_decayed_weights(args.weight_decay),
                          optax.sgd(args.lr, momentum=0.9))
  if args.method == "pcd":   # persistent chains (Tieleman 2008): better samples than CD-1's
    trainer = contrastive.pcd(optimizer, k=args.k, n_chains=args.batch_size)
  else:
    trainer = contrastive.cd(optimizer, k=args.k)
  state, history = train.fit(key_fit, trainer, params, x, epochs=args.epochs,
                             batch_size=args.batch_size, progress="rbm")
  last = history[-1]
  print(f"epoch {last['epoch']}: reconstruction error {last['recon_error']:.4f}, "
        f"pseudo-log-likelihood {last['pseudo_likelihood']:.2f} nats, {last['seconds']:.1f} s")

  # Samples: `sample_steps` block-Gibbs sweeps of chains started at training images (chains
  # started at random, `gibbs.init_random`, tend to fall into one or two modes); the pictures
  # show p(v | h) of each chain's last hidden state, smoother than the binary v.
  key_pick, key_run = jax.random.split(key_sample)
  start = x[jax.random.choice(key_pick, len(x), (args.n_samples,), replace=False)]
  chains, _ = gibbs.chain(key_run, state.params, gibbs.init(state.params, start),
                          args.sample_steps)
  v = rbm.visible_mean(state.params, chains.h)
  out = pathlib.Path(args.out)
  zoom = 2 if ds.image_shape[0] >= 28 else 4
  filters = viz.save_filters(out / "filters.png", state.params.W, ds.image_shape, zoom=zoom)
  samples = viz.save_grid(out / "samples.png", v, ds.image_shape, scale=None, zoom=zoom)
  print(f"wrote {filters} and {samples}")


if __name__ == "__main__":
  main()
