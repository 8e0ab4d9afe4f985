"""Unit families: the per-layer pieces of a Boltzmann machine's energy.

A layer of units ``x`` with bias ``a`` (and, for Gaussian units, a log standard deviation
``log_sigma``) contributes to the energy of a two-layer model

    E(v, h) = E_v(v) + E_h(h) - s_v(v) @ W @ s_h(h)

through its *self energy* ``E_x(x)`` and its *scaled state* ``s_x(x)`` (``x`` for every
family here except Gaussian units with a learned sigma, where it is ``x / sigma``). Given the
input ``phi`` that the other layer sends through ``W`` (``phi = s_h(h) @ W.T`` for visible units),
every family provides, for the conditional ``p(x | phi) ∝ exp(-E_x(x) + s_x(x) . phi)``:

* ``mean(phi, bias, log_sigma)``: ``E[x | phi]``;
* ``sample(key, phi, bias, log_sigma)``: a draw from ``p(x | phi)``;
* ``log_partition(phi, bias, log_sigma)``: ``log ∫ exp(-E_x(x) + s_x(x) . phi) dx`` summed over
  the layer's units, the term that marginalising the layer out adds to a free energy.

The families know nothing about RBMs: they are the vocabulary that ``jdbn.rbm`` speaks. All are
frozen, hashable dataclasses, so they can sit in a params pytree as static metadata.

References:
  Hinton (2010), "A practical guide to training restricted Boltzmann machines", UTML TR 2010-003.
  Welling, Rosen-Zvi & Hinton (2005), "Exponential family harmoniums with an application to
  information retrieval".
  Nair & Hinton (2010), "Rectified linear units improve restricted Boltzmann machines".

The families live in submodules, all re-exported here: :mod:`jdbn.units.base` (the
:class:`Units` interface and :func:`softplus`), :mod:`jdbn.units.discrete` (:class:`Bernoulli`,
:class:`Softmax`), :mod:`jdbn.units.continuous` (:class:`Gaussian`, :class:`ReLU`),
:mod:`jdbn.units.joint` (:class:`Joint`) and :mod:`jdbn.units.pooling` (:class:`PoolingSoftmax`,
probabilistic max-pooling).

"""

from jdbn.units.base import Array, Units, softplus
from jdbn.units.continuous import Gaussian, ReLU
from jdbn.units.discrete import Bernoulli, Softmax
from jdbn.units.joint import Joint
from jdbn.units.pooling import PoolingSoftmax
from jdbn.units import base as _base
from jdbn.units import continuous as _continuous

__all__ = ["Array", "Bernoulli", "Gaussian", "Joint", "PoolingSoftmax", "ReLU", "Softmax", "Units",
           "softplus"]

# The private helpers this module held before it became a package.
_HALF_LOG_2PI = _base._HALF_LOG_2PI  # pylint: disable=protected-access
_sigma = _base._sigma  # pylint: disable=protected-access
_TAIL = _continuous._TAIL  # pylint: disable=protected-access
_TAIL_PROPOSALS = _continuous._TAIL_PROPOSALS  # pylint: disable=protected-access
_tail_sample = _continuous._tail_sample  # pylint: disable=protected-access
