"""OCPP security endpoint: WebSocket sessions, station handlers, outbox."""
