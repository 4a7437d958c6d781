"""Certificate lifecycle: root and sub-CA rotation jobs, expiry watch, station certificate supersession."""
