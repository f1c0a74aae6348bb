"""The compressed artifact: its binary format and entropy coding."""
