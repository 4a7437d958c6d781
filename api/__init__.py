"""pnc-pki adapters: REST, OCPP, OCSP HTTP and the pnc CLI."""
