"""Datasets of the course: MNIST (full and bundled subset) and MNIST-Captions."""
