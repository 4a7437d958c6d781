"""Our derived grammars vs EXIficient's shipped grammar objects, state by state (oracle only).

Covers every grammar state reachable from the document and fragment grammars, not just the
messages in the corpus: production counts (hence event-code widths), event types, qnames and
datatype classes must agree.
"""

from __future__ import annotations

import pytest

from tests.oracle.compare_grammars import Walker
from tests.pki.iso15118.exi.oracle import Oracle

pytestmark = [pytest.mark.oracle, pytest.mark.interop]


@pytest.mark.parametrize("name", ["iso2", "iso20", "xmldsig"])
def test_grammars_match_exificient(oracle: Oracle, name: str) -> None:
    w = Walker(oracle, name)
    diffs = w.run()
    assert w.states > 100
    assert diffs == []
