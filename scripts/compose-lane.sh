#!/usr/bin/env bash
# `./dev compose`: the compose lane on a machine that may have nothing for it yet (ours:
# root, no engine running, no registry). It installs what is missing (Debian's docker.io
# and debootstrap), starts a dockerd of its own when none answers (its data root, exec
# root, pidfile and socket under .cache/docker; stopped by PID at the end, also on
# failure), builds compose v2 from its Go module into .cache, makes the images the compose
# file names (scripts/images.sh), then runs scripts/chaos-compose.sh: the very script the
# GitHub workflow's chaos job runs. Arguments go to pytest. $PYTHON: the .venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE_VERSION=v2.29.7
STATE=$PWD/.cache/docker
export PYTHON=${PYTHON:-$PWD/.venv/bin/python}

say() { printf '==> %s\n' "$*" >&2; }

install_missing() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if [ "${#missing[@]}" -eq 0 ]; then return; fi
  say "installing Debian's ${missing[*]}"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # Where the package's service starts (systemd), that engine answers and is used below.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

engine_answers() { timeout 10 docker version >/dev/null 2>&1; }

dockerd_pid=""
short_run=""

stop_engine() {
  [ -n "$dockerd_pid" ] || return 0
  say "stopping our dockerd (pid $dockerd_pid)"
  kill -TERM "$dockerd_pid" 2>/dev/null || true
  local deadline=$((SECONDS + 60))
  while kill -0 "$dockerd_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  if kill -0 "$dockerd_pid" 2>/dev/null; then
    say "dockerd did not stop within 60 s; killing it"
    kill -KILL "$dockerd_pid" 2>/dev/null || true
  fi
  wait "$dockerd_pid" 2>/dev/null || true
  dockerd_pid=""
  if [ -n "$short_run" ]; then rm -rf "$short_run"; short_run=""; fi
}

# A dockerd that an earlier run of ours could not stop (killed itself, say) still holds
# our pidfile and data root, and a new one would refuse to start: stop that one, by the
# PID in our pidfile, after checking it is a dockerd on our data root.
stop_stale_engine() {
  local pid
  pid=$(cat "$STATE/dockerd.pid" 2>/dev/null) || return 0
  if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "dockerd.*--data-root $STATE/data"; then
    say "stopping a dockerd an earlier run left behind (pid $pid)"
    dockerd_pid=$pid
    stop_engine
  fi
}

# A dockerd of our own. No default bridge and no iptables rules: the compose network is a
# user-defined bridge, published ports go through docker-proxy on 127.0.0.1, and no
# NAT means no container reaches anything beyond this machine.
start_engine() {
  mkdir -p "$STATE"
  stop_stale_engine
  # Sockets live in the exec root (containerd's too, deeper down) and a socket path holds
  # at most 108 bytes: under a deep checkout they go to a short temporary folder instead.
  local run=$STATE
  if [ "${#STATE}" -gt 60 ]; then
    short_run=$(mktemp -d /tmp/coupon-docker.XXXXXX)
    run=$short_run
  fi
  local sock=$run/docker.sock
  say "starting dockerd (data root $STATE/data, socket $sock)"
  # dockerd warns "IPv4 forwarding is disabled. Networking will not work.": only the way
  # out is off; the compose network and the published ports work.
  dockerd --data-root "$STATE/data" --exec-root "$run/exec" --pidfile "$STATE/dockerd.pid" \
    --host "unix://$sock" --bridge none --iptables=false --ip-masq=false --ip-forward=false \
    >"$STATE/dockerd.log" 2>&1 &
  dockerd_pid=$!
  export DOCKER_HOST=unix://$sock
  local deadline=$((SECONDS + 60))
  until engine_answers; do
    if ! kill -0 "$dockerd_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$STATE/dockerd.log" >&2
      echo "dockerd did not come up" >&2
      return 1
    fi
    sleep 0.5
  done
}

ensure_compose() {
  if docker compose version >/dev/null 2>&1; then return; fi
  export DOCKER_CONFIG=$STATE/config
  local plugin=$DOCKER_CONFIG/cli-plugins/docker-compose stamp=$STATE/.compose-$COMPOSE_VERSION
  if [ ! -x "$plugin" ] || [ ! -f "$stamp" ]; then
    say "building compose $COMPOSE_VERSION from its Go module"
    mkdir -p "$STATE/gobin" "$(dirname "$plugin")"
    GOBIN=$STATE/gobin CGO_ENABLED=0 go install "github.com/docker/compose/v2/cmd@$COMPOSE_VERSION"
    mv "$STATE/gobin/cmd" "$plugin"
    touch "$stamp"
  fi
}

install_missing
trap stop_engine EXIT
# A signal ends the script through exit, so the EXIT trap stops the engine then too.
trap 'exit 130' INT
trap 'exit 143' TERM
if ! engine_answers; then
  start_engine
fi
ensure_compose
scripts/images.sh
scripts/chaos-compose.sh "$@"
