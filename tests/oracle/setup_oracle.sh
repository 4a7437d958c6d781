#!/usr/bin/env bash
# Create the EXIficient test-oracle venv (<repo>/.oracle-venv) for the ISO 15118 EXI codec tests.
#
# The oracle is the Java EXIficient codec (EXICodec.jar) shipped in the `iso15118` wheel (Josev).
# It is a TEST ORACLE ONLY: it lives in its own venv (the full `iso15118` package pins pydantic 1
# and cryptography 44), is installed with --no-deps (we only need the jar and the XSDs) and is
# never imported by pki/.  Java 17 runs it.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$REPO/.oracle-venv"
PY="${PYTHON:-python3}"

if ! command -v java >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "java not found: installing openjdk-17-jre-headless" >&2
    apt-get install -y openjdk-17-jre-headless
  else
    echo "java not found: install Debian openjdk-17-jre-headless (as root) and re-run" >&2
    exit 1
  fi
fi
java -version 2>&1 | head -1

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --no-deps "iso15118==0.31.2" py4j
JAR="$("$VENV/bin/python" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("iso15118")
root = pathlib.Path(spec.submodule_search_locations[0])
print(root / "shared" / "EXICodec.jar")
PY
)"
test -f "$JAR" || { echo "EXICodec.jar not found at $JAR" >&2; exit 1; }
echo "oracle ready: venv=$VENV jar=$JAR"
