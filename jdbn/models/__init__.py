"""jdbn's models, one module each, all implementing :class:`jdbn.models.base.BlockModel`.

* :mod:`jdbn.models.rbm`: restricted Boltzmann machines (also importable as ``jdbn.rbm``);
* :mod:`jdbn.models.dbm`: layered chains of blocks, the Deep Boltzmann Machine's energy;
* :mod:`jdbn.models.bm`: Boltzmann machines with lateral couplings on any graph, sampled by a
  graph colouring or one unit at a time;
* :mod:`jdbn.models.hopfield`: Hopfield nets (Hebbian and Storkey storage, zero-temperature and
  Glauber recall), with ``{-1, +1}`` :class:`~jdbn.models.hopfield.Spin` units;
* :mod:`jdbn.models.lattice`: Boltzmann machines on a 2D lattice (the Ising model) coupled by a
  stencil, sampled by a colouring of the lattice (the checkerboard for nearest neighbours);
* :mod:`jdbn.models.crbm`: conditional RBMs ``p(y | x)``, whose biases are linear in a context
  that rides, frozen, in the data block.
"""

from jdbn.models import base, bm, crbm, dbm, hopfield, lattice, rbm  # noqa: F401
