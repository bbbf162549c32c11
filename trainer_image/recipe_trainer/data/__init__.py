"""The recipe data pipeline: raw files -> clean, scored recipes -> formatted, augmented,
tokenized and packed training batches. Every module here is pure and seeded."""
