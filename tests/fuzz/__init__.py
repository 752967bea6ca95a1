"""Fuzzing: hypothesis over the shot-spec parser and the sidecar readers, and a bounded mutation
loop over valid media files for every reader (issue 8, item 2)."""
