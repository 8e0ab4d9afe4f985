"""jdbn: Restricted Boltzmann Machines, Deep Belief Networks and relatives as pure JAX functions.

Every model is a block model (:mod:`jdbn.models`); the samplers (:mod:`jdbn.samplers`), the
contrastive trainer (:mod:`jdbn.contrastive`, :mod:`jdbn.phases`) and the training loop
(:mod:`jdbn.loop`) are written once against that interface.
"""

from jdbn import gibbs, models, rbm, samplers, units

__version__ = "0.1.0"
