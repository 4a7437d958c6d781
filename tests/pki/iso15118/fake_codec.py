"""A stand-in for the EXI codec in tests of the contract pipeline (NOT EXI).

It serialises trees canonically (sorted-key JSON, bytes as base64) so digests and signatures are deterministic and
any change to a signed element changes its bytes — enough to test which elements are digested and signed, the
signature format and every failure path. Byte-level EXI interop is tested after the EXI codec is merged
(see docs/plug-and-charge.md, "Status").
"""

from __future__ import annotations

import base64
import json
from typing import Any


def _enc(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"$b": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {k: _enc(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_enc(v) for v in value]
    return value


def _hook(obj: dict[str, Any]) -> Any:
    if set(obj) == {"$b"}:
        return base64.b64decode(obj["$b"])
    return obj


class FakeCodec:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def _dump(self, value: Any) -> bytes:
        return json.dumps(_enc(value), sort_keys=True, separators=(",", ":")).encode()

    def encode_message(self, message: Any, namespace: str) -> bytes:
        self.calls.append("encode_message")
        return b"MSG" + self._dump([namespace, message])

    def decode_message(self, data: bytes, namespace: str) -> dict[str, Any]:
        self.calls.append("decode_message")
        if not data.startswith(b"MSG"):
            raise ValueError("not a message")
        ns, tree = json.loads(data[3:], object_hook=_hook)
        if ns != namespace:
            raise ValueError("namespace mismatch")
        return tree  # type: ignore[no-any-return]

    def encode_fragment(self, name: str, value: Any, namespace: str) -> bytes:
        self.calls.append(f"fragment:{name}")
        return b"FRG" + self._dump([namespace, name, value])

    def encode_signed_info(self, signed_info: Any) -> bytes:
        self.calls.append("signed_info")
        return b"SIG" + self._dump(signed_info)
