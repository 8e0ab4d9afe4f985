"""The peers jdbn is measured against, run in the worker process (``benchmarks/_worker.py``).

Each factory sets up one measurement and returns the function the worker times; that function
does the whole measured unit of work (an epoch, ``n_steps`` sweeps, ``reps`` products) and may
return a function computing quality metrics outside the timing.

* NumPy: a clean, vectorised float32 implementation with preallocated buffers and in-place
  ufuncs: the honest best that NumPy allows (its products go to the BLAS NumPy was built with).
* PyTorch (CPU): the same algorithm with in-place ``torch`` ops under ``torch.no_grad()``,
  ``torch.set_num_threads(threads)``.
* scikit-learn: ``BernoulliRBM(...).fit(X)`` with ``n_iter=1``, i.e. one pass of its PCD-1
  (persistent hidden samples, no momentum) over the data in mini-batches.

The CD-1 step of the NumPy and PyTorch peers is jdbn's ``contrastive.cd(optax.sgd(lr,
momentum), k=1)`` written out: ``h0 ~ p(h | v0)``, ``v1 ~ p(v | h0)``, the reconstruction error
of ``E[v | h0]``, the gradient ``(v1' p(h|v1) - v0' p(h|v0)) / batch`` (with the bias
gradients), then ``trace = g + momentum * trace; params -= lr * trace`` as optax does: 5
matrix products per step (NumPy does the two weight-gradient products as one
``[v0; v1]' [-p0 / B; p1 / B]``, PyTorch as ``mm`` then ``addmm_``: whichever was faster with
that library's BLAS on the development machine). Their PCD-1 is the classic
formulation that scikit-learn also uses: the chains persist their hidden samples, drawn with the
previous step's parameters, plus the reconstruction error that jdbn reports: 6 products per step
(scikit-learn: 5, without the reconstruction; jdbn's PCD advances the chains with the current
parameters: 7).

The NumPy DBM (:class:`NumpyDBM`, :func:`numpy_dbm_epoch`) is ``jdbn.train.dbm.pcd`` written out
for a 3-layer Bernoulli DBM: mean-field positive phase with jdbn's stopping rule, persistent
even/odd Gibbs chains, the energy gradient and momentum SGD (``tests/test_benchmarks.py`` checks
it against jdbn's update).
"""

from __future__ import annotations

import os
import sys

import numpy as np

# -------------------------------------------------------------------------------------- helpers


def info() -> dict:
  """The peers' environment: NumPy's BLAS (threadpoolctl), the BLAS env vars, torch if loaded."""
  out = {"peer process BLAS env": {k: os.environ.get(k)
                                   for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}}
  try:
    import threadpoolctl
    pools = threadpoolctl.threadpool_info()
    out["numpy BLAS (threadpoolctl)"] = "; ".join(
        f"{p.get('internal_api')} {p.get('version')} kernel={p.get('architecture')} "
        f"threads={p.get('num_threads')}" for p in pools if p.get("user_api") == "blas") or None
    omp = [p for p in pools if p.get("user_api") == "openmp"]
    if omp:
      out["OpenMP (threadpoolctl)"] = "; ".join(
          f"{p.get('internal_api')} threads={p.get('num_threads')}" for p in omp)
  except ImportError:
    out["numpy BLAS (threadpoolctl)"] = "threadpoolctl not installed"
  if "torch" in sys.modules:
    import torch
    cfg = torch.__config__.show()
    blas = [line.strip() for line in cfg.splitlines() if "BLAS_INFO" in line]
    out["torch"] = (f"{torch.__version__}, threads={torch.get_num_threads()}, "
                    f"{'mkl' if 'BLAS_INFO=mkl' in cfg else (blas[0][:40] if blas else '?')}, "
                    f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
  return out


def _load(path):
  return np.ascontiguousarray(np.load(path), dtype=np.float32)


def _init_params(n_visible, n_hidden, w0_path, seed):
  if w0_path:
    W = _load(w0_path)
  else:
    W = (0.01 * np.random.default_rng(seed).standard_normal((n_visible, n_hidden))).astype(
        np.float32)
  return W, np.zeros(n_visible, np.float32), np.zeros(n_hidden, np.float32)


def _sigmoid_(x):
  """In-place float32 logistic function, ``0.5 tanh(x / 2) + 0.5`` (the fastest in NumPy)."""
  np.multiply(x, 0.5, out=x)
  np.tanh(x, out=x)
  np.multiply(x, 0.5, out=x)
  np.add(x, 0.5, out=x)
  return x


def _torch(threads):
  import torch
  torch.set_num_threads(threads)
  return torch


# ----------------------------------------------------------------------------------------- GEMMs


def gemm(lib, m, k, n, kind, reps, threads=2):
  """``reps`` products of one shape (see ``bound.Gemm``) into a preallocated output."""
  rng = np.random.default_rng(0)
  a_shape = {"nn": (m, k), "nt": (m, k), "tn": (k, m)}[kind]
  b_shape = {"nn": (k, n), "nt": (n, k), "tn": (k, n)}[kind]
  xs = np.stack([rng.random(a_shape, np.float32)] * reps)
  b = rng.random(b_shape, np.float32)
  if lib == "numpy":
    out = np.empty((m, n), np.float32)
    bb = b.T if kind == "nt" else b

    def run():
      for x in xs:
        np.matmul(x.T if kind == "tn" else x, bb, out=out)

    return run
  if lib == "torch":
    torch = _torch(threads)
    txs, tb = torch.from_numpy(xs), torch.from_numpy(b)
    tbb = tb.t() if kind == "nt" else tb
    out = torch.empty((m, n))

    def run_t():
      with torch.no_grad():
        for x in txs:
          torch.mm(x.t() if kind == "tn" else x, tbb, out=out)

    return run_t
  raise ValueError(f"unknown library {lib!r}")


# ---------------------------------------------------------------------------------- NumPy CD/PCD


def numpy_cd_epoch(data_path, n_hidden, batch_size, lr, momentum, persistent=False,
                   n_chains=None, w0_path=None, seed=0, **unused):
  """One epoch of CD-1 (or classic PCD-1) with momentum SGD, NumPy float32.

  Every call starts again from the same initial params, so that each repeat does the same work.
  Returns (as metrics) the epoch's mean reconstruction error.
  """
  data = _load(data_path)
  n, V = data.shape
  H, B = n_hidden, batch_size
  W0, b0, c0 = _init_params(V, H, w0_path, seed)
  rng = np.random.default_rng(seed)
  n_batches = n // B
  C = n_chains or B
  f32 = np.float32
  ph0 = np.empty((B, H), f32)
  h0 = np.empty((B, H), f32)
  uh = np.empty((max(B, C), H), f32)
  pv = np.empty((max(B, C), V), f32)
  uv = np.empty((max(B, C), V), f32)
  X = np.empty((B + C, V), f32)  # [v0; v1]: the two weight-gradient products as one
  P = np.empty((B + C, H), f32)  # [-p(h|v0) / B; p(h|v1) / C]
  gW = np.empty((V, H), f32)
  diff = np.empty((B, V), f32)

  def run():
    W, b, c = W0.copy(), b0.copy(), c0.copy()
    tW, tb, tc = np.zeros_like(W), np.zeros_like(b), np.zeros_like(c)
    h_chain = np.zeros((C, H), f32)  # persistent hidden samples (PCD)
    order = rng.permutation(n)[:n_batches * B]
    recon = 0.0
    for i in range(n_batches):
      v0 = X[:B]
      np.take(data, order[i * B:(i + 1) * B], axis=0, out=v0)
      np.matmul(v0, W, out=ph0)
      np.add(ph0, c, out=ph0)
      _sigmoid_(ph0)
      rng.random(out=uh[:B], dtype=f32)
      np.less(uh[:B], ph0, out=h0)
      # Reconstruction E[v | h0] (CD: v1 is sampled from it).
      pvb = pv[:B]
      np.matmul(h0, W.T, out=pvb)
      np.add(pvb, b, out=pvb)
      _sigmoid_(pvb)
      np.subtract(v0, pvb, out=diff)
      d = diff.ravel()
      recon += float(np.dot(d, d)) / d.size
      if persistent:
        pvc = pv[:C]
        np.matmul(h_chain, W.T, out=pvc)
        np.add(pvc, b, out=pvc)
        _sigmoid_(pvc)
      else:
        pvc = pvb
      v1 = X[B:]
      rng.random(out=uv[:C], dtype=f32)
      np.less(uv[:C], pvc, out=v1)
      ph1 = P[B:]
      np.matmul(v1, W, out=ph1)
      np.add(ph1, c, out=ph1)
      _sigmoid_(ph1)
      if persistent:
        rng.random(out=uh[:C], dtype=f32)
        np.less(uh[:C], ph1, out=h_chain)
      # Gradient of mean F(v0) - mean F(v1), bias gradients before the products overwrite P.
      g_b = v1.mean(0) - v0.mean(0)
      g_c = ph1.mean(0) - ph0.mean(0)
      np.multiply(ph0, -1.0 / B, out=P[:B])
      np.multiply(ph1, 1.0 / C, out=ph1)
      np.matmul(X.T, P, out=gW)
      # optax.sgd(lr, momentum): trace = g + momentum * trace; params -= lr * trace.
      np.multiply(tW, momentum, out=tW)
      np.add(tW, gW, out=tW)
      np.multiply(tW, lr, out=gW)
      np.subtract(W, gW, out=W)
      tb *= momentum
      tb += g_b
      b -= lr * tb
      tc *= momentum
      tc += g_c
      c -= lr * tc
    return {"recon_error": recon / n_batches}

  return run


# ---------------------------------------------------------------------------------- torch CD/PCD


def torch_cd_epoch(data_path, n_hidden, batch_size, lr, momentum, persistent=False,
                   n_chains=None, w0_path=None, seed=0, threads=2, **unused):
  """The NumPy peer's epoch in PyTorch (CPU, float32, ``no_grad``, in-place ops)."""
  torch = _torch(threads)
  data = torch.from_numpy(_load(data_path))
  n, V = data.shape
  H, B = n_hidden, batch_size
  W0, b0, c0 = (torch.from_numpy(a) for a in _init_params(V, H, w0_path, seed))
  gen = torch.Generator().manual_seed(seed)
  n_batches = n // B
  C = n_chains or B
  X = torch.empty((B + C, V))
  P = torch.empty((C, H))
  ph0 = torch.empty((B, H))
  h0 = torch.empty((B, H))
  pvb = torch.empty((B, V))
  pvc = torch.empty((C, V))
  gW = torch.empty((V, H))

  @torch.no_grad()
  def run():
    W, b, c = W0.clone(), b0.clone(), c0.clone()
    tW, tb, tc = torch.zeros_like(W), torch.zeros_like(b), torch.zeros_like(c)
    h_chain = torch.zeros((C, H))
    order = torch.randperm(n, generator=gen)[:n_batches * B]
    recon = torch.zeros(())
    for i in range(n_batches):
      v0 = X[:B]
      torch.index_select(data, 0, order[i * B:(i + 1) * B], out=v0)
      torch.addmm(c, v0, W, out=ph0).sigmoid_()
      torch.bernoulli(ph0, generator=gen, out=h0)
      torch.addmm(b, h0, W.t(), out=pvb).sigmoid_()
      recon += torch.sub(v0, pvb).square_().mean()
      if persistent:
        torch.addmm(b, h_chain, W.t(), out=pvc).sigmoid_()
        src = pvc
      else:
        src = pvb
      v1 = X[B:]
      torch.bernoulli(src, generator=gen, out=v1)
      ph1 = P
      torch.addmm(c, v1, W, out=ph1).sigmoid_()
      if persistent:
        torch.bernoulli(ph1, generator=gen, out=h_chain)
      g_b = v1.mean(0) - v0.mean(0)
      g_c = ph1.mean(0) - ph0.mean(0)
      # Two products accumulated in place (a little faster with MKL than one on [v0; v1]).
      torch.mm(v1.t(), ph1, out=gW)
      gW.addmm_(v0.t(), ph0, beta=1.0 / C, alpha=-1.0 / B)
      tW.mul_(momentum).add_(gW)
      W.sub_(tW, alpha=lr)
      tb.mul_(momentum).add_(g_b)
      b.sub_(tb, alpha=lr)
      tc.mul_(momentum).add_(g_c)
      c.sub_(tc, alpha=lr)
    return {"recon_error": float(recon) / n_batches}

  return run


# ---------------------------------------------------------------------------------- scikit-learn


def sklearn_epoch(data_path, n_hidden, batch_size, lr, seed=0, **unused):
  """``BernoulliRBM(n_components, learning_rate, batch_size, n_iter=1).fit(X)``: one PCD-1 epoch."""
  from sklearn.neural_network import BernoulliRBM
  data = _load(data_path)

  def run():
    model = BernoulliRBM(n_components=n_hidden, learning_rate=lr, batch_size=batch_size,
                         n_iter=1, random_state=seed)
    model.fit(data)

    def metrics():
      v = data[:1000]
      h = model.transform(v)
      pv = 1 / (1 + np.exp(-(h @ model.components_ + model.intercept_visible_)))
      return {"recon_error_after (first 1000)": float(np.mean((v - pv)**2))}

    return metrics

  return run


# ------------------------------------------------------------------------------------ Gibbs sweeps


def numpy_sweeps(n_chains, n_visible, n_hidden, n_steps, w0_path=None, seed=0, **unused):
  """``n_steps`` block-Gibbs sweeps (``h ~ p(h|v)``, ``v ~ p(v|h)``) of ``n_chains`` chains."""
  W, b, c = _init_params(n_visible, n_hidden, w0_path, seed)
  b = (0.1 * np.random.default_rng(seed + 1).standard_normal(n_visible)).astype(np.float32)
  rng = np.random.default_rng(seed)
  f32 = np.float32
  v = (rng.random((n_chains, n_visible), f32) < 0.5).astype(f32)
  ph = np.empty((n_chains, n_hidden), f32)
  h = np.empty((n_chains, n_hidden), f32)
  pv = np.empty((n_chains, n_visible), f32)
  WT = W.T

  def run():
    for _ in range(n_steps):
      np.matmul(v, W, out=ph)
      np.add(ph, c, out=ph)
      _sigmoid_(ph)
      rng.random(out=h, dtype=f32)  # uniforms, then compared in place
      np.less(h, ph, out=h)
      np.matmul(h, WT, out=pv)
      np.add(pv, b, out=pv)
      _sigmoid_(pv)
      rng.random(out=v, dtype=f32)
      np.less(v, pv, out=v)
    return {"mean_v": float(v.mean())}

  return run


def torch_sweeps(n_chains, n_visible, n_hidden, n_steps, w0_path=None, seed=0, threads=2,
                 **unused):
  """The NumPy sweeps in PyTorch (``addmm``, ``sigmoid_``, ``bernoulli``)."""
  torch = _torch(threads)
  W, b, c = (torch.from_numpy(a) for a in _init_params(n_visible, n_hidden, w0_path, seed))
  b = torch.from_numpy(
      (0.1 * np.random.default_rng(seed + 1).standard_normal(n_visible)).astype(np.float32))
  gen = torch.Generator().manual_seed(seed)
  v = torch.bernoulli(torch.full((n_chains, n_visible), 0.5), generator=gen)
  ph = torch.empty((n_chains, n_hidden))
  h = torch.empty((n_chains, n_hidden))
  pv = torch.empty((n_chains, n_visible))
  WT = W.t()

  @torch.no_grad()
  def run():
    for _ in range(n_steps):
      torch.addmm(c, v, W, out=ph).sigmoid_()
      torch.bernoulli(ph, generator=gen, out=h)
      torch.addmm(b, h, WT, out=pv).sigmoid_()
      torch.bernoulli(pv, generator=gen, out=v)
    return {"mean_v": float(v.mean())}

  return run


# ------------------------------------------------------------------------------------- NumPy DBM


class NumpyDBM:
  """A 3-layer Bernoulli DBM ``v - h1 - h2`` trained as ``jdbn.train.dbm.pcd`` does, in NumPy.

  One :meth:`update` of a batch ``v [B, V]`` (params ``W0 [V, H1]``, ``W1 [H1, H2]``, biases
  ``a0, a1, a2``):

  1. positive phase (:meth:`positive`, ``jdbn.models.dbm.mean_field``): the bottom-up pass
     ``q1 = s(2 v W0 + a1)``, ``q2 = s(q1 W1 + a2)``, then up to ``mf_sweeps`` sweeps
     ``q1 = s(v W0 + q2 W1' + a1)``, ``q2 = s(q1 W1 + a2)``, stopping once no ``q`` changed by
     more than ``tol`` (``tol=0``: practically always all of them). ``v W0`` is computed once per
     update: ``v`` is clamped, and XLA hoists the product out of jdbn's loop too;
  2. negative phase (:meth:`negative`, ``jdbn.train.phases.persistent``): ``k`` even/odd sweeps of
     the ``n_chains`` persistent chains, ``h1 ~ p(h1 | v, h2)``, then ``v ~ p(v | h1)`` and
     ``h2 ~ p(h2 | h1)``;
  3. (:meth:`step`) the gradient of ``mean E(v, q) - mean E(chains)``, i.e. ``dW0 = vn' h1n / N -
     v' q1 / B``, ``dW1 = h1n' h2n / N - q1' q2 / B`` and the bias gradients (means), each weight
     gradient as one product over the stacked rows (``[v; vn]' [-q1 / B; h1n / N]`` and
     ``[-q1 / B; h1n / N]' [q2; h2n]``); then ``optax.sgd(lr, momentum)``: ``trace = g +
     momentum * trace; params -= lr * trace``.

  Products per update: ``v W0`` and ``q1 W1`` once, 2 per mean-field sweep, 4 per Gibbs sweep,
  2 for the weight gradients (the 4 of jdbn, stacked in pairs).

  Everything lives in preallocated float32 buffers, updated in place: ``X0 = [v; vn]``,
  ``X1 = [q1; h1n]``, ``X2 = [q2; h2n]`` (data rows first, chain rows after).
  """

  def __init__(self, params: dict, batch_size: int, n_chains: int, mf_sweeps: int, tol: float,
               lr: float, momentum: float, rng):
    f32 = np.float32
    self.params0 = {name: np.ascontiguousarray(params[name], f32)
                    for name in ("W0", "W1", "a0", "a1", "a2")}
    V, H1 = self.params0["W0"].shape
    H2 = self.params0["W1"].shape[1]
    B, N = batch_size, n_chains
    self.B, self.N = B, N
    self.mf_sweeps, self.tol = int(mf_sweeps), float(tol)
    self.lr, self.momentum = f32(lr), f32(momentum)
    self.rng = rng
    self.X0 = np.empty((B + N, V), f32)
    self.X1 = np.empty((B + N, H1), f32)
    self.X2 = np.empty((B + N, H2), f32)
    self.P = np.empty((B + N, H1), f32)  # [-q1 / B; h1n / N]
    self.vW = np.empty((B, H1), f32)  # v W0, hoisted out of the mean-field sweeps
    self.t1 = np.empty((max(B, N), H1), f32)
    self.t2 = np.empty((max(B, N), H2), f32)
    self.c1 = np.empty((N, H1), f32)
    self.tv = np.empty((N, V), f32)
    self.gW0 = np.empty((V, H1), f32)
    self.gW1 = np.empty((H1, H2), f32)
    self.reset()

  def reset(self, chains=None) -> None:
    """Params back to the initial ones, zero momentum, chains ``(vn, h1n, h2n)`` (default: drawn
    from the base rates, ``p = sigmoid(a)`` with every field zero, as jdbn starts them)."""
    self.p = {name: a.copy() for name, a in self.params0.items()}
    self.trace = {name: np.zeros_like(a) for name, a in self.params0.items()}
    if chains is None:
      chains = [self.rng.random((self.N, self.p[a].size), np.float32) < _sigmoid_(self.p[a].copy())
                for a in ("a0", "a1", "a2")]
    for X, c in zip((self.X0, self.X1, self.X2), chains):
      X[self.B:] = c

  @property
  def q(self) -> tuple:
    """The data rows ``(v, q1, q2)``."""
    return self.X0[:self.B], self.X1[:self.B], self.X2[:self.B]

  @property
  def chains(self) -> tuple:
    """The chain rows ``(vn, h1n, h2n)``."""
    return self.X0[self.B:], self.X1[self.B:], self.X2[self.B:]

  def positive(self) -> int:
    """Mean-field for the batch in ``X0[:B]``; returns the sweeps run (after the bottom-up pass)."""
    W0, W1, a1, a2 = self.p["W0"], self.p["W1"], self.p["a1"], self.p["a2"]
    v, q1, q2 = self.q
    vW, t1, t2 = self.vW, self.t1[:self.B], self.t2[:self.B]
    np.matmul(v, W0, out=vW)
    np.multiply(vW, 2.0, out=q1)
    np.add(q1, a1, out=q1)
    _sigmoid_(q1)
    np.matmul(q1, W1, out=q2)
    np.add(q2, a2, out=q2)
    _sigmoid_(q2)
    W1T = W1.T
    for it in range(1, self.mf_sweeps + 1):
      np.matmul(q2, W1T, out=t1)
      np.add(t1, vW, out=t1)
      np.add(t1, a1, out=t1)
      _sigmoid_(t1)
      np.matmul(t1, W1, out=t2)
      np.add(t2, a2, out=t2)
      _sigmoid_(t2)
      # The largest change of any q (jdbn's delta), with the old values as scratch.
      np.subtract(q1, t1, out=q1)
      np.subtract(q2, t2, out=q2)
      delta = max(np.abs(q1, out=q1).max(), np.abs(q2, out=q2).max())
      np.copyto(q1, t1)
      np.copyto(q2, t2)
      if delta <= self.tol:
        return it
    return self.mf_sweeps

  def negative(self, k: int) -> None:
    """``k`` sweeps of the chains: ``h1 ~ p(h1 | vn, h2n)``, then ``vn, h2n ~ p(. | h1)``."""
    W0, W1 = self.p["W0"], self.p["W1"]
    vn, h1n, h2n = self.chains
    f1, f2, fv, c1 = self.t1[:self.N], self.t2[:self.N], self.tv, self.c1
    rng, f32 = self.rng, np.float32
    W0T, W1T = W0.T, W1.T
    for _ in range(k):
      np.matmul(vn, W0, out=f1)
      np.matmul(h2n, W1T, out=c1)
      np.add(f1, c1, out=f1)
      np.add(f1, self.p["a1"], out=f1)
      _sigmoid_(f1)
      rng.random(out=h1n, dtype=f32)  # uniforms, then compared in place
      np.less(h1n, f1, out=h1n)
      np.matmul(h1n, W0T, out=fv)
      np.add(fv, self.p["a0"], out=fv)
      _sigmoid_(fv)
      rng.random(out=vn, dtype=f32)
      np.less(vn, fv, out=vn)
      np.matmul(h1n, W1, out=f2)
      np.add(f2, self.p["a2"], out=f2)
      _sigmoid_(f2)
      rng.random(out=h2n, dtype=f32)
      np.less(h2n, f2, out=h2n)

  def step(self) -> None:
    """The gradient of the current positive and negative states, and the momentum SGD step."""
    B, N = self.B, self.N
    g = {}
    # Bias gradients (chain means minus data means) before anything is overwritten.
    for name, X in (("a0", self.X0), ("a1", self.X1), ("a2", self.X2)):
      g[name] = X[B:].mean(0) - X[:B].mean(0)
    P = self.P
    np.multiply(self.X1[:B], -1.0 / B, out=P[:B])
    np.multiply(self.X1[B:], 1.0 / N, out=P[B:])
    g["W0"] = np.matmul(self.X0.T, P, out=self.gW0)
    g["W1"] = np.matmul(P.T, self.X2, out=self.gW1)
    for name, grad in g.items():
      t, p = self.trace[name], self.p[name]
      np.multiply(t, self.momentum, out=t)
      np.add(t, grad, out=t)
      np.multiply(t, self.lr, out=grad)
      np.subtract(p, grad, out=p)

  def update(self, k: int) -> int:
    """One full update of the batch in ``X0[:B]``; returns the mean-field sweeps."""
    sweeps = self.positive()
    self.negative(k)
    self.step()
    return sweeps


def numpy_dbm_epoch(data_path, sizes, batch_size, lr, momentum, mf_sweeps, n_chains, k, tol=0.0,
                    params_path=None, seed=0, **unused):
  """One epoch of ``jdbn.train.dbm.pcd`` (see :class:`NumpyDBM`) over the data, NumPy float32.

  ``params_path``: an ``.npz`` of the initial ``W0, W1, a0, a1, a2`` (jdbn's, so both start
  alike); without it, ``N(0, 0.01^2)`` weights and zero biases. The examples are shuffled and cut
  into ``n // batch_size`` batches, as jdbn does. Every call starts again from the same params,
  momentum and chains, so that each repeat does the same work. Returns (as metrics) the mean
  number of mean-field sweeps per update.
  """
  sizes = tuple(int(s) for s in sizes)
  if len(sizes) != 3:
    raise ValueError(f"the NumPy DBM has 3 layers (v, h1, h2), got sizes {sizes}")
  data = _load(data_path)
  n, V = data.shape
  if V != sizes[0]:
    raise ValueError(f"data has {V} columns for sizes {sizes}")
  if params_path:
    with np.load(params_path) as f:
      params = {name: f[name] for name in ("W0", "W1", "a0", "a1", "a2")}
  else:
    init = np.random.default_rng(seed + 1)
    params = {"W0": 0.01 * init.standard_normal(sizes[:2]),
              "W1": 0.01 * init.standard_normal(sizes[1:])}
    params.update({f"a{l}": np.zeros(s) for l, s in enumerate(sizes)})
  rng = np.random.default_rng(seed)
  model = NumpyDBM(params, batch_size, n_chains, mf_sweeps, tol, lr, momentum, rng)
  chains0 = tuple(c.copy() for c in model.chains)
  B = batch_size
  n_batches = n // B
  v = model.X0[:B]

  def run():
    model.reset(chains0)
    order = rng.permutation(n)[:n_batches * B]
    sweeps = 0
    for i in range(n_batches):
      np.take(data, order[i * B:(i + 1) * B], axis=0, out=v)
      sweeps += model.update(k)
    return {"mf_sweeps": sweeps / n_batches}

  return run


# ---------------------------------------------------------------------- convolutional RBM (torch)

from benchmarks.conv_peers import torch_conv_cd_epoch, torch_conv_op  # noqa: E402,F401
