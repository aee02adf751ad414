"""Speed harnesses for item2vec: ``python -m benchmarks.run`` (see benchmarks/README.md)."""
