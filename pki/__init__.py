"""pnc-pki domain core: certificate profiles, CA service, key stores, storage. No web framework here."""
