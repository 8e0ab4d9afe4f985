"""Natural images offline: scikit-learn's two bundled photographs, whitened, as patches.

``sklearn.datasets.load_sample_images`` ships two 427 x 640 colour photographs (a temple and a
flower) with scikit-learn, so no download is needed; scikit-learn is in jdbn's ``bench`` extras.
:func:`whitened` turns them into greyscale, optionally downsampled images whitened by Olshausen &
Field's (1997) filter ``|f| exp(-(|f| / f0)^4)`` (the 1/f amplitude spectrum of natural images
flattened, the highest frequencies rolled off), with zero mean and unit variance, the input of
Gaussian-visible (conv) RBMs with sigma 1 (Lee, Grosse, Ranganath & Ng 2009, section 4.1);
:func:`patches` cuts random square patches from them.
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["sample_photos", "whiten", "whitened", "patches"]


def sample_photos() -> list[np.ndarray]:
  """scikit-learn's two sample photographs as greyscale ``[H, W]`` float64 in [0, 1].

  Raises:
    ImportError: scikit-learn is not installed (``pip install jdbn[bench]``).
  """
  try:
    from sklearn.datasets import load_sample_images  # pylint: disable=import-outside-toplevel
  except ImportError as err:
    raise ImportError("the natural images are scikit-learn's sample photographs: pip install "
                      "scikit-learn (jdbn's bench extras)") from err
  return [np.asarray(im, np.float64).mean(-1) / 255.0 for im in load_sample_images().images]


def whiten(image: np.ndarray, f0_fraction: float = 0.8) -> np.ndarray:
  """Olshausen & Field's whitening: ``image [H, W]`` filtered by ``|f| exp(-(|f| / f0)^4)``,
  ``f0 = f0_fraction * min(H, W) / 2`` cycles per image, then scaled to zero mean and unit
  variance: ``[H, W] -> [H, W]``."""
  h, w = image.shape
  fy = np.fft.fftfreq(h)[:, None] * h
  fx = np.fft.fftfreq(w)[None, :] * w
  f = np.sqrt(fx**2 + fy**2)
  f0 = f0_fraction * min(h, w) / 2
  out = np.real(np.fft.ifft2(np.fft.fft2(image - image.mean()) * f * np.exp(-(f / f0)**4)))
  return (out - out.mean()) / out.std()


def whitened(downsample: int = 2, f0_fraction: float = 0.8) -> list[np.ndarray]:
  """The sample photographs, greyscale, averaged over ``downsample x downsample`` blocks and
  whitened (:func:`whiten`): two ``[H, W]`` float64 images."""
  out = []
  for im in sample_photos():
    d = downsample
    h, w = (im.shape[0] // d) * d, (im.shape[1] // d) * d
    out.append(whiten(im[:h, :w].reshape(h // d, d, w // d, d).mean((1, 3)), f0_fraction))
  return out


def patches(key: jax.Array, images: list[np.ndarray], n: int, size: int) -> np.ndarray:
  """``n`` random ``size x size`` patches, taken in turn from each of ``images``:
  ``[n, 1, size, size]`` float32 (one channel).

  Raises:
    ValueError: ``size`` larger than an image, or ``n < 1``.
  """
  if n < 1:
    raise ValueError(f"the number of patches must be positive, got {n}")
  for im in images:
    if size > min(im.shape):
      raise ValueError(f"patches of {size} x {size} do not fit in a {im.shape[0]} x "
                       f"{im.shape[1]} image")
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
  out = np.empty((n, 1, size, size), np.float32)
  for i in range(n):
    im = images[i % len(images)]
    top = rng.integers(0, im.shape[0] - size + 1)
    left = rng.integers(0, im.shape[1] - size + 1)
    out[i, 0] = im[top:top + size, left:left + size]
  return out
