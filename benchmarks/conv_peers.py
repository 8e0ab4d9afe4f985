"""The PyTorch peer of ``benchmarks/conv_epoch.py``: a CD-1 epoch of a convolutional RBM with
probabilistic max-pooling, and the convolutions alone (for the bound).

Run in the peers' process (``benchmarks/_worker.py`` finds the factories through
``benchmarks.peers``). The peer does jdbn's update (``jdbn.train.conv.cd(optax.sgd(lr,
momentum), k=1)``) on the same model, ``K`` filters ``W [K, C, r, r]``, per-channel visible
biases ``b [C]``, per-filter hidden biases ``c [K]``, Bernoulli visible units and ``pool x pool``
pooling blocks, in float32 under ``torch.no_grad()``:

    z0 = conv2d(v0, W) + c,  p0 = softmax over each block's c^2 units and "off" (logit 0)
    h0 ~ p0 (one uniform per block, inverse CDF),  v1 ~ sigmoid(conv_transpose2d(h0, W) + b)
    z1 = conv2d(v1, W) + c,  p1 the same softmax
    grad W = (corr(v1, p1) - corr(v0, p0)) / B,  corr = conv2d's weight gradient
    grad b = (sum v1 - sum v0) / B,  grad c = (sum p1 - sum p0) / B   (over batch and positions)

the gradient of ``mean F(v0) - mean F(v1)`` with ``F`` the free energy (Lee et al. 2009, sec.
3.3), applied by momentum SGD as optax does (``t = momentum t + g; theta -= lr t``).
"""

from __future__ import annotations

import numpy as np

#: The three convolutions of a CD-1 step (see ``benchmarks/conv_bound.py``).
OPS = ("conv", "conv_transpose", "weight_grad")


def _torch(threads):
  import torch
  torch.set_num_threads(threads)
  return torch


def _load(path):
  return np.ascontiguousarray(np.load(path), dtype=np.float32)


def to_blocks(x, c: int):
  """``[B, K, H, W] -> [B, K, H/c, W/c, c*c]``: one row per pooling block (row-major inside)."""
  b, k, h, w = x.shape
  return x.reshape(b, k, h // c, c, w // c, c).permute(0, 1, 2, 4, 3, 5).reshape(
      b, k, h // c, w // c, c * c)


def from_blocks(g, c: int):
  """The inverse of :func:`to_blocks`: ``[B, K, P, Q, c*c] -> [B, K, cP, cQ]``."""
  b, k, p, q, _ = g.shape
  return g.reshape(b, k, p, q, c, c).permute(0, 1, 2, 4, 3, 5).reshape(b, k, p * c, q * c)


def pool_probabilities(torch, z, c: int):
  """``p(h_j = 1 | z)`` per block, ``exp(z_j) / (1 + sum_block exp(z))``, grouped
  ``[B, K, P, Q, c*c]`` (stable: shifted by ``max(0, max_block z)``)."""
  g = to_blocks(z, c)
  m = g.amax(-1, keepdim=True).clamp_(min=0.0)
  e = (g - m).exp_()
  denom = e.sum(-1, keepdim=True).add_(torch.exp(-m))
  return e.div_(denom)


def sample_blocks(torch, probs, gen):
  """One outcome per block from grouped probabilities ``[..., c*c]`` (the rest is "off"), by one
  uniform per block and the inverse CDF: the one-hot states ``[..., c*c]``."""
  u = torch.rand(probs.shape[:-1] + (1,), generator=gen)
  below = (u < probs.cumsum(-1)).to(probs.dtype)  # 1 from the chosen unit on
  below[..., 1:] -= below[..., :-1].clone()
  return below


def cd_grads(torch, W, v0, p0, v1, p1, fused: bool = True):
  """The CD gradient of ``mean F(v0) - mean F(v1)``: ``(gW [K, C, r, r], gb [C], gc [K])``
  from images ``v [B, C, H, W]`` and hidden means ``p [B, K, H', W']``."""
  wgrad = torch.nn.grad.conv2d_weight
  B = v0.shape[0]
  if fused:  # one weight-gradient convolution over both halves
    gW = wgrad(torch.cat([v1, v0]), W.shape, torch.cat([p1, -p0]))
  else:
    gW = wgrad(v1, W.shape, p1).sub_(wgrad(v0, W.shape, p0))
  gb = (v1.sum((0, 2, 3)) - v0.sum((0, 2, 3))) / B
  gc = (p1.sum((0, 2, 3)) - p0.sum((0, 2, 3))) / B
  return gW.div_(B), gb, gc


def torch_conv_cd_epoch(data_path, image_shape, batch_size, pool, lr, momentum, w0_path, seed=0,
                        threads=2, fused=False, **unused):
  """One CD-1 epoch of the pooled convolutional RBM (module docstring), from ``W0`` and zero
  biases each call; returns the mean squared error of the mean reconstructions."""
  torch = _torch(threads)
  F = torch.nn.functional
  data = torch.from_numpy(_load(data_path)).reshape((-1,) + tuple(image_shape))
  W0 = torch.from_numpy(_load(w0_path))
  K, C = W0.shape[:2]
  n, B = data.shape[0], batch_size
  n_batches = n // B
  gen = torch.Generator().manual_seed(seed)

  @torch.no_grad()
  def run():
    W, b, c = W0.clone(), torch.zeros(C), torch.zeros(K)
    tW, tb, tc = torch.zeros_like(W), torch.zeros_like(b), torch.zeros_like(c)
    order = torch.randperm(n, generator=gen)[:n_batches * B]
    recon = torch.zeros(())
    for i in range(n_batches):
      v0 = data[order[i * B:(i + 1) * B]]
      g0 = pool_probabilities(torch, F.conv2d(v0, W, c), pool)
      h0 = from_blocks(sample_blocks(torch, g0, gen), pool)
      pv = F.conv_transpose2d(h0, W, b).sigmoid_()
      recon += (v0 - pv).square_().mean()
      v1 = torch.bernoulli(pv, generator=gen)
      p1 = from_blocks(pool_probabilities(torch, F.conv2d(v1, W, c), pool), pool)
      gW, gb, gc = cd_grads(torch, W, v0, from_blocks(g0, pool), v1, p1, fused)
      for theta, trace, g in ((W, tW, gW), (b, tb, gb), (c, tc, gc)):
        trace.mul_(momentum).add_(g)
        theta.sub_(trace, alpha=lr)
    return {"recon_error": float(recon) / n_batches}

  return run


def torch_conv_op(op, batch, image_shape, n_filters, filter_size, reps, threads=2, gemm=False,
                  **unused):
  """``reps`` calls of one convolution of a CD-1 step alone (``OPS``), on random operands; with
  ``gemm``, as matrix products over ``unfold``'s patches (``fold`` for the transposed one)."""
  torch = _torch(threads)
  F = torch.nn.functional
  C, H, Wd = image_shape
  r = filter_size
  rng = np.random.default_rng(0)
  v = torch.from_numpy((rng.random((batch, C, H, Wd)) < 0.5).astype(np.float32))
  p = torch.from_numpy(rng.random((batch, n_filters, H - r + 1, Wd - r + 1), np.float32))
  W = torch.from_numpy(0.01 * rng.standard_normal((n_filters, C, r, r)).astype(np.float32))
  hw, mhw = (H, Wd), (H - r + 1) * (Wd - r + 1)
  Wm = W.reshape(n_filters, -1)
  if gemm and op == "conv":
    fn = lambda: Wm @ F.unfold(v, r)
  elif gemm and op == "conv_transpose":
    fn = lambda: F.fold(Wm.t() @ p.reshape(batch, n_filters, mhw), hw, r)
  elif gemm and op == "weight_grad":
    fn = lambda: torch.einsum("nkm,nqm->kq", p.reshape(batch, n_filters, mhw), F.unfold(v, r))
  elif op == "conv":
    fn = lambda: F.conv2d(v, W)
  elif op == "conv_transpose":
    fn = lambda: F.conv_transpose2d(p, W)
  elif op == "weight_grad":
    fn = lambda: torch.nn.grad.conv2d_weight(v, W.shape, p)
  else:
    raise ValueError(f"unknown op {op!r}")

  @torch.no_grad()
  def run():
    for _ in range(reps):
      fn()

  return run
