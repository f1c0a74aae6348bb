"""Config, registries, layer selection, pruning, quantization and the compress pipeline."""
