"""Following the performer's face through a plate: the tracker, chunk tracks and their merge,
temporal smoothing, and face identity."""
