"""jdbn: Restricted Boltzmann Machines, Deep Belief Networks and relatives as pure JAX functions."""

from jdbn import gibbs, rbm, units

__version__ = "0.1.0"
