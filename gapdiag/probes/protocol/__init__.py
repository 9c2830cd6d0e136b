"""Protocol probes (GD3xx): the evaluation boundary between training and validation (protocol mismatch,
score direction, threshold transfer, pair composition, preprocessing, train/eval mode)."""
