"""Stage 3, train: the fine-tuning loop with its losses, samplers, text views and pixel cache."""
