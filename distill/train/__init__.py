"""Training: the loop, distributed runs, checkpoints."""
