"""Training: baselines, fine-tuning after compression, the Deep Compression pipeline."""
