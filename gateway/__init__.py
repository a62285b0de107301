"""The edge: Envoy configuration rendering and the REST compatibility layer."""
