"""Evaluation of (compressed) models on cached test tensors."""
