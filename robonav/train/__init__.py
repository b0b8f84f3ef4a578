"""robonav.train: recurrent PPO (trainer, ppo, gae, storage, imitation, config) and the cue task; see DESIGN.md."""
