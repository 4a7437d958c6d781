"""A private PostgreSQL schema for one benchmark run, so a benchmark never writes into (or trips over) the tables
of the database it is pointed at."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text


@contextmanager
def private_schema(url: str) -> Iterator[str]:
    """Yield ``url`` for SQLite (or empty) unchanged; for PostgreSQL create ``bench_<random>``, yield the URL with
    that search path (also usable by a server process started with it), and drop the schema afterwards."""
    if not url.startswith("postgresql"):
        yield url
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
