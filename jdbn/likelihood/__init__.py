"""Partition functions and likelihoods: exact enumeration, AIS, RAISE and pseudo-likelihood.

* :func:`exact_log_z`: the sum over every state of an RBM's smaller enumerable layer
  (:mod:`jdbn.likelihood.exact`, with :func:`log_likelihood` and :func:`pseudo_likelihood`).
* :func:`ais`: annealed importance sampling (Neal 2001) of ``log Z`` for any block model, through
  its tempered copy (:mod:`jdbn.likelihood.annealing`); for an RBM the fast path of
  :mod:`jdbn.likelihood.rbm` with base rates from data (Salakhutdinov & Murray 2008).
* :func:`estimate_log_likelihood` (AIS for a test set, with bounds) and
  :func:`raise_log_likelihood` (reverse AIS, a stochastic lower bound; Burda, Grosse &
  Salakhutdinov 2015), so that AIS and RAISE sandwich an RBM's test log-likelihood.
* :func:`variational_bound`: a DBM's mean-field lower bound on the test log-likelihood with an
  AIS ``log Z`` (:mod:`jdbn.likelihood.dbm`; Salakhutdinov & Hinton 2009).
* :mod:`jdbn.likelihood.crbm`: a conditional RBM's ``log p(y | x)`` per example (AIS and RAISE
  for each context's own ``Z(x)``).
* :mod:`jdbn.likelihood.dbn`: a DBN's variational bound with its top RBM's AIS ``log Z``
  (Salakhutdinov & Murray 2008).
"""

from __future__ import annotations

from typing import Any, Optional

import jax

from jdbn.likelihood import annealing, crbm, dbm, dbn, exact, rbm  # noqa: F401  (the submodules)
from jdbn.likelihood.annealing import (AISResult, base_rates, check_betas,  # noqa: F401
                                       default_betas, model_base_log_z)
from jdbn.likelihood.exact import (MAX_ENUMERATION_STATES, exact_log_z,  # noqa: F401
                                   log_likelihood, pseudo_likelihood)
from jdbn.likelihood.rbm import (LogLikelihoodEstimate, RAISEResult,  # noqa: F401
                                 base_log_z, base_rate_biases, estimate_log_likelihood,
                                 raise_log_likelihood)
from jdbn.likelihood.dbm import BoundEstimate, variational_bound  # noqa: F401
from jdbn.models import rbm as R

__all__ = ["AISResult", "BoundEstimate", "LogLikelihoodEstimate", "MAX_ENUMERATION_STATES", "RAISEResult", "ais",
           "base_log_z", "base_rate_biases", "base_rates", "check_betas", "default_betas",
           "estimate_log_likelihood", "exact_log_z", "log_likelihood", "model_base_log_z",
           "pseudo_likelihood", "raise_log_likelihood", "variational_bound"]


def ais(key: jax.Array, model: Any, *, n_chains: int = 100, betas: Optional[Any] = None,
        base_b: Optional[Any] = None, data: Optional[Any] = None, **kwargs) -> AISResult:
  """AIS estimate of ``log Z`` with ±3 se bounds, for an RBM or any other block model.

  For an :class:`~jdbn.rbm.RBM` without the generic options this is :func:`jdbn.likelihood.rbm.ais`
  (``base_b`` visible base biases, or ``data`` to take base rates from); for any other model (or
  given ``base_biases=``, ``summed=``, ``n_sweeps=``) it is
  :func:`jdbn.likelihood.annealing.ais_model`, which anneals the model's tempered copy with the
  generic Gibbs kernel. Both return an :class:`AISResult`. Example::

    res = ais(key, params, data=train_x)                              # an RBM
    res = ais(key, dbm, base_biases=base_rates(dbm, {"v": train_x}))  # a DBM, odd layers summed
  """
  if isinstance(model, R.RBM) and not kwargs:
    return rbm.ais(key, model, n_chains=n_chains, betas=betas, base_b=base_b, data=data)
  if base_b is not None or data is not None:
    raise ValueError("base_b= and data= are the RBM path's options; for this model give "
                     "base_biases= (e.g. base_rates(model, {block: data}))")
  return annealing.ais_model(key, model, n_chains=n_chains, betas=betas, **kwargs)
