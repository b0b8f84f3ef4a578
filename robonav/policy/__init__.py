"""robonav.policy: the LSTM actor-critic, its single-step form, and the checkpoint format (torch inside).

Floor 1: imports nothing of robonav. Deployment reads checkpoints through robonav.policy.checkpoint without the
trainer.
"""
