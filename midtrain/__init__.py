"""Continued pre-training of Llama checkpoints on weighted corpus mixes, with stable-then-decay schedules."""
