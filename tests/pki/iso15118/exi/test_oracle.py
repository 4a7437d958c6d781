"""Byte-exact agreement with EXIficient on the corpus, both directions (needs the oracle venv + Java)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from pki.iso15118.exi import (
    NS_ISO2,
    NS_ISO20,
    NS_XMLDSIG,
    codec,
    decode_fragment,
    decode_message,
    encode_message,
)
from tests.pki.iso15118.exi.corpus import cases
from tests.pki.iso15118.exi.oracle import Oracle, to_json

pytestmark = [pytest.mark.oracle, pytest.mark.interop]

CASES = cases()
_G = {NS_ISO2: "iso2", NS_ISO20: "iso20", NS_XMLDSIG: "xmldsig"}


def _pnc_encode(kind: str, ns: str, tree: Any) -> bytes:
    if kind == "doc":
        return encode_message(tree, ns)
    return codec.encode_fragment(codec.grammars(_G[ns]), list(tree.items()))


def _pnc_decode(kind: str, ns: str, data: bytes) -> Any:
    if kind == "doc":
        return decode_message(data, ns)
    return dict(decode_fragment(data, ns))


def _norm(j: Any) -> Any:
    """EXIficient JSON quirks: numbers may come back as strings; compare canonical forms."""
    if isinstance(j, dict):
        return {k: _norm(v) for k, v in j.items()}
    if isinstance(j, list):
        return [_norm(v) for v in j]
    if isinstance(j, str) and j.lstrip("-").isdigit():
        return int(j)
    return j


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 50
    assert {c[2] for c in CASES} == {NS_ISO2, NS_ISO20, NS_XMLDSIG}


@pytest.mark.parametrize(("cid", "kind", "ns", "tree"), CASES, ids=[c[0] for c in CASES])
def test_exificient_encode_pnc_decode_reencode(
    oracle: Oracle, cid: str, kind: str, ns: str, tree: Any
) -> None:
    ref = oracle.encode(tree, ns)
    decoded = _pnc_decode(kind, ns, ref)
    assert decoded == tree
    assert _pnc_encode(kind, ns, decoded) == ref


# EXIficient only decodes complete documents and xmldsig (SignedInfo) fragments: its decoder never
# switches the ISO message grammars into fragment mode, so -2/-20 fragments go one way only.
DOC_CASES = [c for c in CASES if c[1] == "doc" or c[2] == NS_XMLDSIG]


@pytest.mark.parametrize(("cid", "kind", "ns", "tree"), DOC_CASES, ids=[c[0] for c in DOC_CASES])
def test_pnc_encode_exificient_decode_reencode(
    oracle: Oracle, cid: str, kind: str, ns: str, tree: Any
) -> None:
    ours = _pnc_encode(kind, ns, tree)
    back = oracle.decode(ours, ns)
    assert _norm(back) == _norm(to_json(tree))
    assert oracle.encode(_json_to_tree(back, tree), ns) == ours


def _json_to_tree(j: Any, like: Any) -> Any:
    """EXIficient JSON back to our tree shape, using the original tree for the binary/int typing."""
    if isinstance(like, bytes):
        return (
            bytes.fromhex(j)
            if len(j) == 2 * len(like) and _is_hex(j) and not _b64ok(j, like)
            else base64.b64decode(j)
        )
    if isinstance(like, dict):
        return {k: _json_to_tree(j[k], like[k]) for k in like}
    if isinstance(like, list):
        return [_json_to_tree(a, b) for a, b in zip(j, like, strict=True)]
    return like if isinstance(like, int) else j


def _is_hex(s: str) -> bool:
    return all(c in "0123456789ABCDEFabcdef" for c in s)


def _b64ok(s: str, like: bytes) -> bool:
    try:
        return base64.b64decode(s, validate=True) == like
    except ValueError:
        return False


def test_x448_installation_data_with_the_56_byte_key_matches_exificient(oracle: Oracle) -> None:
    """[V2G20-2495]: the unpadded 56-byte X448 DHPublicKey; EXIficient encodes it to the same bytes."""
    from tests.pki.iso15118.exi.test_codec import _installation_res_20

    tree = _installation_res_20("X448", 56, "X448_EncryptedPrivateKey", 84)
    ref = oracle.encode(tree, NS_ISO20)
    assert encode_message(tree, NS_ISO20) == ref
    assert decode_message(ref, NS_ISO20) == tree
