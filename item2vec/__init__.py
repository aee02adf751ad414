"""item2vec."""
