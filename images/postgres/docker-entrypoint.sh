#!/usr/bin/env bash
# Entrypoint of the local postgres stand-in. What it keeps of the official image's contract
# (the parts docker-compose.ci.yml relies on):
# - POSTGRES_PASSWORD (required), POSTGRES_USER (default postgres), POSTGRES_DB (default
#   the user) on first start, when PGDATA holds no cluster yet;
# - *.sql and *.sh in /docker-entrypoint-initdb.d run in name order on that first start,
#   against a server that listens on its Unix socket only (so a client that checks only
#   the socket can see "ready" before the real server listens on TCP);
# - then `postgres` runs as the postgres user, listening on every address of the
#   container, password (scram-sha-256) auth from the network; later starts (a restart of
#   the container) skip the init and go through crash recovery as usual.
set -Eeuo pipefail

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  # exec, not fork: PostgreSQL must be PID 1 to get docker's stop signal.
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?the postgres stand-in needs POSTGRES_PASSWORD}"
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
  psql=(psql -v ON_ERROR_STOP=1 -X -q --username "$user")
  if [ "$db" != postgres ]; then
    "${psql[@]}" --dbname postgres -c "CREATE DATABASE \"$db\""
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "running $f"; bash "$f" ;;
      *.sql) echo "running $f"; "${psql[@]}" --dbname "$db" -f "$f" ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "PostgreSQL init done; starting the server"
fi

exec "$@"
