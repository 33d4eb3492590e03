#!/usr/bin/env bash
# The compose lane: the chaos suite against docker-compose.ci.yml. The GitHub workflow's
# chaos job and `./dev compose` both run this very script, so the two cannot drift.
#
# Needs: a Docker engine with compose v2, the images the compose file names (pulled, or
# made by scripts/images.sh), and $PYTHON with the project's dev extra installed.
# Does: the service's wheels (scripts/wheels.sh), `docker compose up -d --build --wait`,
# the chaos suite (every scenario, database faults through the Docker SDK) against the
# stack through the CHAOS_* settings, then, in every case, the stack's state and logs
# into $REPORT_DIR and `docker compose down -v`. Exits non-zero on any failed check.
#
# Host ports (all on 127.0.0.1) can be moved by environment so a local PostgreSQL or a
# second stack does not clash: COUPON_SERVICE_PORT (3000), COUPON_POSTGRES_PORT (5432),
# COUPON_TOXIPROXY_PORT (8474), COUPON_PROXY_PORT (5433). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
REPORT_DIR=${REPORT_DIR:-reports}
COMPOSE_PROJECT=coupon-chaos  # the `name:` of docker-compose.ci.yml

export COUPON_SERVICE_PORT=${COUPON_SERVICE_PORT:-3000}
export COUPON_POSTGRES_PORT=${COUPON_POSTGRES_PORT:-5432}
export COUPON_TOXIPROXY_PORT=${COUPON_TOXIPROXY_PORT:-8474}
export COUPON_PROXY_PORT=${COUPON_PROXY_PORT:-5433}

db_url="postgresql://postgres:postgres@127.0.0.1:%s/coupons?sslmode=disable"
export CHAOS_SERVICE_URL="http://127.0.0.1:$COUPON_SERVICE_PORT"
export CHAOS_TOXIPROXY_URL="http://127.0.0.1:$COUPON_TOXIPROXY_PORT"
# shellcheck disable=SC2059  # the format is ours
CHAOS_DATABASE_URL=$(printf "$db_url" "$COUPON_POSTGRES_PORT")
# shellcheck disable=SC2059
CHAOS_PROXIED_DATABASE_URL=$(printf "$db_url" "$COUPON_PROXY_PORT")
export CHAOS_DATABASE_URL CHAOS_PROXIED_DATABASE_URL
export CHAOS_COMPOSE_PROJECT=$COMPOSE_PROJECT

say() { printf '==> %s\n' "$*" >&2; }
compose() { docker compose -f docker-compose.ci.yml "$@"; }

# Whatever happened (compose itself failing included): what the stack looked like and
# what it logged, then down with its volumes. A failing down fails the lane.
finish() {
  local status=$?
  mkdir -p "$REPORT_DIR"
  compose ps --all >"$REPORT_DIR/compose-ps.txt" 2>&1 || true
  compose logs --no-color --timestamps >"$REPORT_DIR/compose.log" 2>&1 || true
  say "stack logs in $REPORT_DIR/compose.log; docker compose down -v"
  compose down --volumes --remove-orphans --timeout 10 || status=1
  exit "$status"
}

mkdir -p "$REPORT_DIR"
scripts/wheels.sh
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
say "docker compose up -d --build --wait"
compose up -d --build --wait
say "the chaos suite against the compose stack"
"$PYTHON" -m pytest tests/chaos --chaos -p no:cacheprovider \
  --junitxml="$REPORT_DIR/chaos-compose.xml" --chaos-report-dir="$REPORT_DIR/chaos-compose" "$@"
