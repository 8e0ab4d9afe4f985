"""jdbn's models, one module each, all implementing :class:`jdbn.models.base.BlockModel`.

* :mod:`jdbn.models.rbm`: restricted Boltzmann machines (also importable as ``jdbn.rbm``);
* :mod:`jdbn.models.centered`: centered RBMs (offsets on the states, the same distributions);
* :mod:`jdbn.models.dbm`: Deep Boltzmann Machines: energy, mean-field, the variational bound;
* :mod:`jdbn.models.dbm_labels`: the label posterior and classifier of a DBM with a label block;
* :mod:`jdbn.models.bm`: Boltzmann machines with lateral couplings on any graph, sampled by a
  graph colouring or one unit at a time;
* :mod:`jdbn.models.hopfield`: Hopfield nets (Hebbian and Storkey storage, the energy), with
  ``{-1, +1}`` :class:`~jdbn.models.hopfield.Spin` units;
* :mod:`jdbn.models.dense_memory`: dense associative memories and the modern Hopfield network;
* :mod:`jdbn.models.lattice`: Boltzmann machines on a 2D lattice (the Ising model) coupled by a
  stencil, sampled by a colouring of the lattice (the checkerboard for nearest neighbours);
* :mod:`jdbn.models.conv`: convolutional RBMs, optionally with probabilistic max-pooling;
* :mod:`jdbn.models.cdbn`: convolutional DBNs, stacks of them (greedy training: jdbn.train.cdbn);
* :mod:`jdbn.models.crbm`: conditional RBMs ``p(y | x)``, whose biases are linear in a context
  that rides, frozen, in the data block;
* :mod:`jdbn.models.dbn`: Deep Belief Networks as tuples of RBMs.

Recall dynamics of the Hopfield nets and memories live in :mod:`jdbn.samplers.recall`.
"""

from jdbn.models import (base, bm, cdbn, centered, conv, crbm, dbm,  # noqa: F401
                         dbm_labels, dense_memory, hopfield, lattice, rbm)

__all__ = ["base", "bm", "cdbn", "centered", "conv", "crbm", "dbm", "dbm_labels", "dense_memory",
           "hopfield", "lattice", "rbm"]
