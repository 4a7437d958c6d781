"""The format-checking validators handed to the `ocpp` package follow the schema they were asked for."""

from __future__ import annotations

from ocpp import messages
from ocpp.messages import MessageType

from api.ocpp.schema_formats import install


def test_each_message_type_gets_its_own_schema_even_when_the_package_builds_validators_anew() -> None:
    """Two threads validating a message type for the first time each build a validator; the package keeps one and
    the other is freed, so its id() can come back for another schema. Emptying the package's cache between the two
    look-ups makes that happen here (CPython reuses the freed address): the response must still get the response
    schema."""
    install()
    for _ in range(20):
        messages._validators.clear()
        request = messages.get_validator(MessageType.Call, "Get15118EVCertificate", "2.0.1")
        messages._validators.clear()
        response = messages.get_validator(MessageType.CallResult, "Get15118EVCertificate", "2.0.1")
        assert "exiRequest" in request.schema["properties"]
        assert "exiResponse" in response.schema["properties"]
        assert request.format_checker is not None and response.format_checker is not None
