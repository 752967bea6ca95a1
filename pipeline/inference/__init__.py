"""Running a fine-tuned actor: the actor model, the engine contract that ``engines/``
implements, driving landmarks, synthesis and its per-chunk output."""
