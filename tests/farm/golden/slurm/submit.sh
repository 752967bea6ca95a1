#!/bin/bash
# Submit every shot's stages; each stage waits for the stages it needs (afterok).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p /jobs/show/likeness_work/farm-logs
jid_sh010_ingest=$(sbatch --parsable sh010/01_ingest.sbatch)
jid_sh010_track_chunk=$(sbatch --parsable --dependency=afterok:$jid_sh010_ingest sh010/02_track_chunk.sbatch)
jid_sh010_track=$(sbatch --parsable --dependency=afterok:$jid_sh010_ingest:$jid_sh010_track_chunk sh010/03_track.sbatch)
jid_sh010_deliver=$(sbatch --parsable --dependency=afterok:$jid_sh010_ingest:$jid_sh010_track sh010/04_deliver.sbatch)
jid_sh020_ingest=$(sbatch --parsable sh020/01_ingest.sbatch)
jid_sh020_track_chunk=$(sbatch --parsable --dependency=afterok:$jid_sh020_ingest sh020/02_track_chunk.sbatch)
jid_sh020_track=$(sbatch --parsable --dependency=afterok:$jid_sh020_ingest:$jid_sh020_track_chunk sh020/03_track.sbatch)
jid_sh020_deliver=$(sbatch --parsable --dependency=afterok:$jid_sh020_ingest:$jid_sh020_track sh020/04_deliver.sbatch)
echo "submitted"
