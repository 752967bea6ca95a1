"""Training of the talking-head model: meta-training and few-shot fine-tuning, and their losses.

- :mod:`pipeline.train.losses` and :mod:`pipeline.train.objective`: the loss terms and the G/D
  objectives (Zakharov et al. 2019, section 3.2).
- :mod:`pipeline.train.meta` and :mod:`pipeline.train.episodes`: ``train-base`` under
  torchrun/DDP, on a corpus's episodes; :mod:`pipeline.train.corpus` prepares a corpus.
- :mod:`pipeline.train.finetune`: per-actor few-shot fine-tuning, from
  :mod:`pipeline.train.start`, on the pairs of :mod:`pipeline.train.pairs`, with the fusion chosen
  by :mod:`pipeline.train.fusion_choice`, writing the QC of :mod:`pipeline.train.qc`.

The checkpoint format is :mod:`pipeline.models.checkpoint`, and the fine-tuned actor at
inference :class:`pipeline.inference.actor.ActorModel`: rendering needs nothing from here.
"""
