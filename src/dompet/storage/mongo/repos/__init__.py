"""The MongoDB store's repositories: everything but the journal writer and the history reads,
each module named for what it holds, as in the SQL store (docs/storage.md). Each runs its
operations through the store's ``MongoAccess`` (``access.py``): one document at a time, or
a multi-document transaction: accounts, users (and operators), sessions, throttles, secrets,
customers, transfers, idempotency, monitoring, reconcile, records.
"""
