"""The SQL store's repositories: everything but the journal writer and the history reads,
written once for both engines, each module named for what it holds (docs/storage.md).

Each takes the engine's :class:`~dompet.storage.sql.access.ConnectionAccess` and runs
SQLAlchemy Core statements on the connections it gives (``write``, ``read``), or hot single
statements through it (``fetch_row``, ``write_row``); none knows which engine it is on.

- ``accounts.py``: opening, blocking, balances;
- ``users.py``: wallet users and dashboard operators;
- ``sessions.py``: sessions (login to logout, refresh-token rotation and reuse);
- ``throttles.py``: attempt throttles (logins, registrations, per client);
- ``secrets.py``: server secrets kept in the database;
- ``customers.py``: savings customers;
- ``transfers.py``: reading, leasing and retrying transfers (settlement's side);
- ``idempotency.py``: Idempotency-Key claims, answers and the purge;
- ``monitoring.py``: the dashboard's and metrics' figures, worker heartbeats;
- ``reconcile.py``: the ledger snapshot ``dompet reconcile`` checks;
- ``records.py``: whole-database export and import.
"""
