#!/bin/sh
# Submit each shot's stage jobs, each depending on the one before.
set -e
deadlinecommand -SubmitMultipleJobs -dependent \
  -job sh010/01_ingest.job sh010/01_ingest.plugin \
  -job sh010/02_track_chunk.job sh010/02_track_chunk.plugin \
  -job sh010/03_track.job sh010/03_track.plugin \
  -job sh010/04_deliver.job sh010/04_deliver.plugin
deadlinecommand -SubmitMultipleJobs -dependent \
  -job sh020/01_ingest.job sh020/01_ingest.plugin \
  -job sh020/02_track_chunk.job sh020/02_track_chunk.plugin \
  -job sh020/03_track.job sh020/03_track.plugin \
  -job sh020/04_deliver.job sh020/04_deliver.plugin
