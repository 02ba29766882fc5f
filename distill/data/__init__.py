"""Data: sources, augmentation, pair streams, the pair cache, synthetic data, teacher validation."""
