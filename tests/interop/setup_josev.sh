#!/usr/bin/env bash
# Josev (`iso15118`, the EV side of the interop tests) in its own venv: <repo>/.josev-venv.
# The full package pins pydantic 1 and cryptography 44, so it never shares a venv with pnc-pki. Java 17 runs its
# EXIficient codec.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$REPO/.josev-venv"
command -v java >/dev/null || { echo "java not found: install openjdk-17-jre-headless" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet "iso15118==0.31.2"
"$VENV/bin/python" -c "import iso15118.shared.security, py4j; print('josev ready:', '$VENV')"
