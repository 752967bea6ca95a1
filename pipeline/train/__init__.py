"""Training of the talking-head model: losses, checkpoints, meta-training and few-shot fine-tuning.

- :mod:`pipeline.train.losses` and :mod:`pipeline.train.objective`: the loss terms and the G/D
  objectives (Zakharov et al. 2019, section 3.2).
- :mod:`pipeline.models.checkpoint`: self-describing, atomic, hashed checkpoints.
- :mod:`pipeline.train.meta`: ``train-base`` under torchrun/DDP.
- :mod:`pipeline.train.finetune`: per-actor few-shot fine-tuning and :class:`ActorModel`.
"""

from __future__ import annotations
