"""Settings of the OCPP endpoint (``PNC_OCPP_*``), kept apart from the core settings."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class OcppSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PNC_OCPP_", env_file=None, extra="ignore")

    heartbeat_interval: int = 300  # BootNotification interval (s)
    max_frame_bytes: int = 65_536
    # permessage-deflate: stateless (default; no zlib state kept per connection), context or off (ws_protocol.py)
    ws_compression: str = "stateless"  # a 2.0.1 frame's largest field is 10,000 chars; anything far above is hostile
    call_timeout: float = 30.0  # seconds to wait for a station's answer to an outbox call
    outbox_tick: float = 2.0  # how often the dispatcher looks for due calls
    outbox_backoff_base: float = 10.0  # first retry after this many seconds, doubling
    outbox_backoff_max: float = 3600.0
    outbox_max_attempts: int = 50
    outbox_ttl_hours: int = 24 * 7
    # Several instances on one database: each holds the connections of its own stations under a lease it renews
    # every `connection_renew` s; calls left "sent" by an instance are requeued once its lease ran out.
    connection_lease: float = 60.0
    connection_renew: float = 20.0
    instance_id: str | None = None  # default: host:pid:random (unique per process start)
    # Security profile 2/3 behind a TLS-terminating proxy: only these peers may assert TLS and a client certificate.
    trusted_proxies: list[str] = []
    client_cert_header: str = "x-ssl-client-cert"  # URL-encoded PEM (nginx $ssl_client_escaped_cert)
    # GetCertificateStatus for foreign issuers is forwarded only to these responder URLs (exact match).
    upstream_ocsp_responders: list[str] = []
    # CSMS-integration mode: pending CSMS→station calls are POSTed here (and are also listable by polling).
    csms_webhook_url: str | None = None
    csms_webhook_secret: str | None = None  # sent as a bearer token to the webhook
