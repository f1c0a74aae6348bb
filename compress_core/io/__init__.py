"""Inputs and outputs: data sets, model registry, uploads, image folders, the result store."""
