"""OCPP security endpoint: WebSocket sessions, station handlers, outbox."""

from api.ocpp import schema_formats

schema_formats.install()  # the ocpp package's schema validation checks date-time formats too
