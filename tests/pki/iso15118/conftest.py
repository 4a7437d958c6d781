"""The contract pipeline runs against the JSON stand-in codec always, and against the real ISO 15118 EXI codec
(``pki.iso15118.exi``) whenever it is part of the build — so merging the EXI branch turns these into byte-level
EXI tests without edits."""

from __future__ import annotations

from typing import Any

import pytest

from pki.iso15118.xmldsig import load_exi_codec
from tests.pki.iso15118.fake_codec import FakeCodec


@pytest.fixture(params=["fake", "exi"])
def codec(request: pytest.FixtureRequest) -> Any:
    if request.param == "fake":
        return FakeCodec()
    real = load_exi_codec()
    if real is None:
        pytest.skip("ISO 15118 EXI codec (pki.iso15118.exi) not in this build yet")
    return real


def is_real_exi(codec: Any) -> bool:
    return not isinstance(codec, FakeCodec)
