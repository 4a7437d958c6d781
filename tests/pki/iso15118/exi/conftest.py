from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pki.iso15118.exi.oracle import Oracle, find_oracle


@pytest.fixture(scope="session")
def oracle() -> Iterator[Oracle]:
    found = find_oracle()
    if isinstance(found, str):
        pytest.skip(f"EXIficient ORACLE UNAVAILABLE, byte-exact oracle tests SKIPPED: {found}")
    o = Oracle(*found)
    yield o
    o.close()
