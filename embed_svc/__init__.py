"""embed_svc: stateless image -> faces, embeddings and attributes, over gRPC (internal)."""
