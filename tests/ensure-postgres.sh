#!/usr/bin/env bash
# Make sure a PostgreSQL with trust auth and a database `test` answers on 127.0.0.1:5432.
# Starts the local cluster if it is down; installs Debian's postgresql if there is none.
set -euo pipefail
[ -n "${YANSHOU_TEST_PG_URL:-}" ] && exit 0   # the caller brings its own server

ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "installing PostgreSQL (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  # Loopback trust for tests only, as on the CI machines.
  sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
fi

if ! ready; then
  for version in $(ls /etc/postgresql); do
    echo "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 60); do ready && break; sleep 0.5; done
fi
ready || { echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; }

if ! psql -h 127.0.0.1 -U postgres -d test -Atqc 'select 1' >/dev/null 2>&1; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc 'create database test' \
    || createdb -h 127.0.0.1 -U postgres test
fi
psql -h 127.0.0.1 -U postgres -d test -Atqc 'select 1' >/dev/null
echo "PostgreSQL ready at 127.0.0.1:5432/test"
