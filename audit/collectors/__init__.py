"""Collectors: one module per Google API, each asking its questions through the official client.

A collector knows nothing of controls. It makes its calls under a purpose (see docs/architecture.md)
so the recorder files the raw answers as evidence, and returns only what the engine needs to scope
later questions (a job's uid, a key's name).
"""
