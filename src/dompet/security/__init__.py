"""Adapters for secrets: Argon2id PIN hashing and JWT tokens."""
