"""Quality-control outputs: review frames, plots and the QC page looked at before approval.

- :mod:`pipeline.qc.tracking`: landmark overlays, the overlay movie, the confidence/jitter plot.
- :mod:`pipeline.qc.contact`: what the QC page shows of a delivery, collected while it is written.
- :mod:`pipeline.qc.report`: the QC page itself.
"""
