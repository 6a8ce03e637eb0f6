"""Training: sharding, the pure train/eval steps, optimizers, schedules and the trainer."""
