"""Use cases, written against the domain and the ports only."""
