"""R1-Zero-style GRPO on math prompts that records the RL dynamics."""
