"""robonav.train: recurrent PPO (trainer, ppo, gae, storage, imitation, config), R2D2 (r2d2, q_trainer) and the run
bookkeeping they hold (run); see docs/training.md."""
