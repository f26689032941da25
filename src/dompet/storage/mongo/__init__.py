"""The MongoDB implementation of the storage port (PyMongo's native async client)."""
