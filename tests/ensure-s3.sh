#!/usr/bin/env bash
# Make sure an S3-compatible server answers on 127.0.0.1:9000 for the blob store's S3 tests:
# moto in server mode (PyPI, pinned, in a virtual environment under ~/.cache/yanshou), started
# in the background if nothing listens there. Any credentials are accepted; each test makes its
# own bucket. YANSHOU_TEST_S3_URL set: the caller brings its own server.
set -euo pipefail
[ -n "${YANSHOU_TEST_S3_URL:-}" ] && exit 0

MOTO_VERSION=5.1.18
port=9000
cache=${XDG_CACHE_HOME:-$HOME/.cache}/yanshou
venv=$cache/moto-$MOTO_VERSION
ready() { curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; }

ready && exit 0
if ! "$venv/bin/python" -c "import moto, flask" 2>/dev/null; then
  echo "installing moto $MOTO_VERSION (S3-compatible test server) into $venv"
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
log=$cache/moto-server.log
echo "starting moto_server on 127.0.0.1:$port (log: $log)"
nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
for _ in $(seq 1 120); do ready && break; sleep 0.5; done
ready || { echo "moto_server did not come up on 127.0.0.1:$port; see $log" >&2; exit 1; }
