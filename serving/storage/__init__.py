"""Storage: SQLAlchemy models + Alembic migrations, and the content-addressed photo store.

SQLite in WAL mode is the embedded default; PostgreSQL is used through a
``postgresql+psycopg://`` URL. Only ``serving.services`` talks to this package.
"""

from serving.storage.db import Database
from serving.storage.photostore import PhotoStore

__all__ = ["Database", "PhotoStore"]
