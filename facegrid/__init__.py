"""Facegrid's shared package: configuration helpers, logging, gRPC plumbing, generated stubs.

The generated protobuf/gRPC modules (``facegrid.<service>.v1``) are produced by ``make proto``
into this package and are not committed.
"""
