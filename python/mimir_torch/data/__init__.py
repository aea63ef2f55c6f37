"""Datasets of the PyTorch engine: the built-in procedural set, CIFAR-10 binary."""
