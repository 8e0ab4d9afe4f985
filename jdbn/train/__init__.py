"""Training: the contrastive trainer and its phases, the one training loop, and what is built on
them (RBM fitting with monitoring, greedy DBN pretraining, up-down, Flax fine-tuning, data-parallel
training).

``jdbn.train.fit`` and friends are :mod:`jdbn.train.rbm`'s (the RBM training loop with metrics,
checkpoints and exact resumption); the submodules are the pieces:

* :mod:`jdbn.train.contrastive`: ``trainer(optimizer, phases)``, ``cd``, ``pcd``, ``gradient``.
* :mod:`jdbn.train.phases`: positive phases, negative phases and scores a trainer is made of.
* :mod:`jdbn.train.loop`: ``run_epoch`` (one jitted ``lax.scan`` over mini-batches) and ``fit``.
* :mod:`jdbn.train.rbm`: ``fit`` for RBMs with monitoring metrics.
* :mod:`jdbn.train.crbm`: CD-k and conditional PCD for conditional RBMs (the generic trainer).
* :mod:`jdbn.train.updown`, :mod:`jdbn.train.finetune`, :mod:`jdbn.train.parallel`.
"""

from jdbn.train.rbm import (CHECKPOINT_NAME, METRICS_NAME, TrainingDiverged,  # noqa: F401
                            evaluate_metrics, fit, hinton_sgd, run_settings, settings_diff)

__all__ = ["CHECKPOINT_NAME", "METRICS_NAME", "TrainingDiverged", "fit", "evaluate_metrics",
           "hinton_sgd", "run_settings", "settings_diff"]
