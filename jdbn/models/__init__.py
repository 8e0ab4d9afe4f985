"""jdbn's models, one module each, all implementing :class:`jdbn.models.base.BlockModel`.

* :mod:`jdbn.models.rbm`: restricted Boltzmann machines (also importable as ``jdbn.rbm``);
* :mod:`jdbn.models.dbm`: layered chains of blocks, the Deep Boltzmann Machine's energy;
* :mod:`jdbn.models.bm`: Boltzmann machines with lateral couplings on any graph, sampled by a
  graph colouring or one unit at a time;
* :mod:`jdbn.models.hopfield`: Hopfield nets (Hebbian and Storkey storage, the energy), with
  ``{-1, +1}`` :class:`~jdbn.models.hopfield.Spin` units;
* :mod:`jdbn.models.dense_memory`: dense associative memories and the modern Hopfield network.

Their recall dynamics live in :mod:`jdbn.samplers.recall`.
"""

from jdbn.models import base, bm, dbm, dense_memory, hopfield, rbm  # noqa: F401

__all__ = ["base", "bm", "dbm", "dense_memory", "hopfield", "rbm"]
