"""The SQL engines (SQLite and PostgreSQL) through SQLAlchemy 2 Core, async."""
