"""Writing a shot version: the EXR sequence, the review movie with burn-ins, and the lazy plate
and face sources the delivery loop reads."""
