"""api_svc: the public face API (recognition, detection, verification) behind Envoy."""
