"""What a submission is: the shot spec, its render profile, the actor's consent, the plan of
its stages, and the workdir's status."""
