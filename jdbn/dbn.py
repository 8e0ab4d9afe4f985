"""Deep Belief Networks: the facade over the modules that hold them, one concept each.

Every name this module had before the split is re-exported here unchanged (the same objects), so
``from jdbn import dbn`` and checkpoints that name ``jdbn.dbn.UntiedDBN`` keep working:

* :mod:`jdbn.models.dbn`: the DBN as a tuple of RBMs or an :class:`UntiedDBN`, its checks,
  mean-field passes, label layer and generative classification;
* :mod:`jdbn.models.dbn_likelihood`: the layer conditionals and :func:`log_likelihood_bound`;
* :mod:`jdbn.samplers.dbn`: :func:`generate`;
* :mod:`jdbn.train.pretrain`: greedy layer-wise :func:`pretrain` and :func:`propagate`;
* :mod:`jdbn.train.updown_step`: the up-down trainer :func:`updown`;
* :mod:`jdbn.train.updown`: :func:`sweep_schedule` (and the run-to-schedule ``fit``). ::

    dbn, history = pretrain(key, [784, 500, 500, 2000], x, cd(optax.sgd(0.05, momentum=0.9)),
                            epochs=30, batch_size=100, labels=y)
    y_hat = classify(dbn, x_test)                       # argmin_label F_top(penultimate, label)
    trainer = updown(optax.sgd(1e-3), k=3)              # contrastive wake-sleep, untied weights
    state = trainer.init(key, dbn)
    state, info = trainer.epoch(key, state, (x, y), batch_size=100)
    images = generate(key, state.params, labels=jnp.arange(10).repeat(10), n_steps=1000)

Code inside jdbn imports the modules above, not this one.
"""

from jdbn.models.dbn import (DBN, UntiedDBN, _parts, check, classify, down_pass,
                             label_free_energies, label_log_probs, layer_sizes, n_labels,
                             n_penultimate, penultimate, untie, up_pass)
from jdbn.models.dbn_likelihood import generative_nll, log_likelihood_bound, recognition_nll
from jdbn.samplers.dbn import generate
from jdbn.train.pretrain import LayerHistory, pretrain, propagate
from jdbn.train.updown import sweep_schedule
from jdbn.train.updown_step import UpDownInfo, updown

__all__ = [
    "DBN", "UntiedDBN", "check", "classify", "down_pass", "label_free_energies",
    "label_log_probs", "layer_sizes", "n_labels", "n_penultimate", "penultimate", "untie",
    "up_pass", "generative_nll", "log_likelihood_bound", "recognition_nll", "generate",
    "LayerHistory", "pretrain", "propagate", "sweep_schedule", "UpDownInfo", "updown",
    "_parts",  # private, but jdbn.cli_dbn and experiments/dbn_mnist.py read it
]
