"""Embedding-space probes (GD2xx): pair memorization, the class-level gap, collapse and hubness, split shift."""
