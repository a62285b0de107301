"""The embedded default: starts PostgreSQL, Triton, the three services and Envoy on 127.0.0.1."""
