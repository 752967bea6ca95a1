"""The quality harness (``likeness eval``): the fine-tuned model against the warp baseline.

**Self-reenactment** (default). A real clip is tracked the way production tracks a plate
(:func:`pipeline.tracking.tracker.track_chunk` in chunks, :func:`pipeline.tracking.merge.merge_chunks`: dlib
landmarks, RTS-smoothed), every tracked frame is aligned to the canonical template at the
network's crop size, K reference frames spread evenly over the clip are given to
:func:`pipeline.train.finetune.finetune`, and held-out frames, never within ``min_gap`` frames of
a reference and taken in runs of consecutive frames, drive both the fine-tuned model and the warp
baseline (:func:`pipeline.warping.image.warp_baseline`, the nearest reference warped). Both are
compared with the true aligned crop:

- ``psnr``: dB over the whole crop, 0..1 sRGB;
- ``ssim``: :func:`skimage.metrics.structural_similarity`, Gaussian window σ = 1.5 (11×11),
  ``use_sample_covariance=False``, ``data_range=1``, per RGB channel then averaged (Wang et al.
  2004 settings; the same formula as the training loss);
- ``identity``: L2 distance of dlib's 128-d descriptors of output and truth (< 0.6 reads as the
  same person);
- ``landmark_error``: dlib's 68 points re-fitted on the output and on the truth inside one face
  box (the one found on the truth), mean point distance divided by the truth's inter-ocular
  distance (outer eye corners);
- ``ssim_face``, ``psnr_face``: the same two measures weighted by the production face matte of
  the truth's landmarks (:func:`face_weights`), i.e. only the region a composite keeps. The crop
  is about three quarters hair, body and background, whose motion the crop's landmarks do not
  determine; these two show the face alone. They are diagnostics, not the goal metrics;
- ``jitter``: frame-to-frame RMS change of the output's landmark error over consecutive driven
  frames, over the inter-ocular distance (0 when the output's landmarks move exactly as the
  truth's do); ``jitter_raw`` is the plain RMS motion of the re-fitted output landmarks.

**Cross-identity** (``mode="cross"``, ``driving=`` another clip). The references come from
``clip`` (the target identity); the driving clip's landmarks are retargeted onto the target's
mean reference shape (:func:`pipeline.inference.retarget.retarget`). There is no truth frame, so it reports
the identity distance to the target (mean descriptor of the references) and to the performer (the
driving frame), and ``expression_error``: re-fitted landmarks of the output against the
retargeted driving landmarks, over the inter-ocular distance.

Results go to ``eval.json`` (schema ``likeness.eval/1``) and ``eval.png`` in ``out_dir``.

Nothing in the training sees a driving frame: early stopping, when enabled, holds out a
*reference* (:class:`~pipeline.train.finetune.FinetuneParams`). The figures are for clips the
pipeline has never been tuned on.

CLI (``likeness eval`` or ``python -m pipeline.eval``)::

    likeness eval CLIP [--k 8] [--minutes 20] [--network cpu-preview] [--mode self|cross]
                  [--driving CLIP2] [--tests 40] [--run-length 8] [--min-gap 5]
                  [--max-frames N] [--out DIR] [--json FILE] [--threads 2] [--seed 0]
                  [--cache DIR]
"""
