"""One module per provider: its documented payload as wire classes, and its normalizer."""
