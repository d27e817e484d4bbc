#!/usr/bin/env bash
# Conformance fuzzing of the OpenAPI document with schemathesis (all checks), one run per role.
#
#   tests/schemathesis/run.sh [ROLE…]      roles: admin county_office (default: both)
#
# Starts a fresh `yanshou` (the debug binary, built if missing) on a free port over a temporary
# SQLite database, creates one user per role with `yanshou user add`, logs each in, and runs
# schemathesis against /api/v1/openapi.json with the role's token. Exits non-zero if any run
# finds a failure: an undocumented status or content type, a response not matching its schema,
# a valid request refused, an invalid one accepted, a server error…
#
# Every check runs (schemathesis 4's default; `--checks all` on the command line would override
# the per-operation settings of schemathesis.toml, which says why some operations skip one).
#
# schemathesis comes from PyPI, pinned exactly, into a virtual environment under
# ${XDG_CACHE_HOME:-~/.cache}/yanshou/. It runs with one worker: schemathesis 4.32.5 crashed in
# its own threading code under Python 3.11.7 with four. Bounded by --max-examples (and
# --max-time per role) to stay within a few minutes.
#
# tests/schemathesis/hooks.py teaches schemathesis the media types it lacks (tus's
# application/offset+octet-stream upload chunks).
#
# Per-role results are printed as "schemathesis <role>: passed|failed" lines (tests/run counts
# them). YANSHOU_BIN overrides the binary; SCHEMATHESIS_MAX_EXAMPLES the examples per operation.
set -euo pipefail
cd "$(dirname "$0")/../.."

SCHEMATHESIS_VERSION=4.32.5
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-25}
max_time=${SCHEMATHESIS_MAX_TIME:-170}
roles=("$@")
[ ${#roles[@]} -gt 0 ] || roles=(admin county_office)

cache=${XDG_CACHE_HOME:-$HOME/.cache}/yanshou
venv=$cache/schemathesis-$SCHEMATHESIS_VERSION
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

target=${CARGO_TARGET_DIR:-target}
bin=${YANSHOU_BIN:-$target/debug/yanshou}
if [ -z "${YANSHOU_BIN:-}" ]; then
  cargo build --quiet --locked -p yanshou-server --bin yanshou
fi

config=$PWD/tests/schemathesis/schemathesis.toml
hooks=$PWD/tests/schemathesis/hooks.py
work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

export YANSHOU_DATABASE_URL="sqlite://$work/y.db"
export YANSHOU_LISTEN=127.0.0.1:0
export YANSHOU_LOG=warn
password="schemathesis-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
"$bin" migrate >/dev/null
for role in "${roles[@]}"; do
  YANSHOU_NEW_PASSWORD=$password "$bin" user add "st_$role" --role "$role" >/dev/null
done

"$bin" serve >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
base=
for _ in $(seq 1 100); do
  base=$(sed -n 's/^yanshou listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/server.out")
  [ -n "$base" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { echo "the server did not start" >&2; cat "$work/server.log" >&2; exit 1; }
echo "yanshou at $base"

# Every token before any fuzzing: the fuzzer's failed logins may throttle this address.
declare -A tokens
for role in "${roles[@]}"; do
  tokens[$role]=$(curl -sf -H 'content-type: application/json' \
    -d "{\"username\":\"st_$role\",\"password\":\"$password\"}" "$base/api/v1/auth/login" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
done

status=0
for role in "${roles[@]}"; do
  echo "==> schemathesis as $role (at most $max_examples examples per operation, ${max_time}s)"
  start=$(date +%s)
  set +e
  # From the temporary directory: schemathesis keeps a .schemathesis/ cache where it runs.
  (cd "$work" && SCHEMATHESIS_HOOKS="$hooks" "$venv/bin/schemathesis" --config-file "$config" run \
    "$base/api/v1/openapi.json" --url "$base" \
    -H "Authorization: Bearer ${tokens[$role]}" \
    --workers 1 --max-examples "$max_examples" --max-time "$max_time" \
    --seed 20261130 --request-timeout 10 \
    --report junit --report-junit-path "$work/junit-$role.xml")
  rc=$?
  set -e
  echo "schemathesis $role: $([ $rc = 0 ] && echo passed || echo failed) ($(($(date +%s) - start)) s)"
  [ $rc = 0 ] || status=1
done
if [ "$status" != 0 ]; then
  echo "--- server log (warnings and errors) ---"
  tail -n 50 "$work/server.log"
fi
exit "$status"
