"""Executors: where the training loop runs (the local single process, or Ape-X on Ray)."""
