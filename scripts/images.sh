#!/usr/bin/env bash
# Makes every image docker-compose.ci.yml and the Dockerfile name available without a
# registry, for machines that cannot pull (ours). An image already present is left alone;
# nothing is ever pushed. Run as root with a Docker engine answering (./dev compose does
# both); it needs go (Toxiproxy) and, for the stand-ins, debootstrap and chroot.
#
#   ghcr.io/shopify/toxiproxy:X   built from Toxiproxy's Go module as its own Dockerfile
#                                 does (FROM scratch, /toxiproxy and /toxiproxy-cli)
#   postgres:15.*                 stand-in: Debian bookworm's PostgreSQL 15 on a debootstrap
#                                 base, with an entrypoint that honours the parts of the
#                                 official image's contract our compose file uses
#   python:3.11-slim              stand-in: Debian bookworm's Python 3.11 and pip on it
#
# The base is `debootstrap --variant=minbase bookworm` from the Debian mirror apt uses,
# imported with `docker import`. A build cannot reach a package registry, so the .debs a
# stand-in needs are downloaded on the host (apt-get --download-only in the base's chroot)
# into the stand-in's build context and installed offline by its Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${IMAGES_WORK:-$PWD/.cache/images}
BASE_IMAGE=coupon-chaos/debian:bookworm-minbase
SUITE=bookworm

say() { printf '==> %s\n' "$*" >&2; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# The images the compose file names (pulled ones, not the one it builds) and the base of
# our Dockerfile: read from the files so this list cannot drift from them.
wanted_images() {
  docker compose -f docker-compose.ci.yml config --format json \
    | python3 -c 'import json,sys; [print(s["image"]) for s in json.load(sys.stdin)["services"].values() if "image" in s and "build" not in s]'
  awk 'toupper($1) == "FROM" { print $2 }' Dockerfile
}

# The URI of the Debian mirror apt is configured with (sources.list or deb822 .sources),
# for debootstrap; apt's proxy, if any, goes along through http_proxy.
debian_mirror() {
  local uri
  # shellcheck disable=SC2016  # $(...) here is apt's own template syntax
  uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Created-By: Packages' \
    | awk -v suite="$SUITE" '$2 == suite && $3 == "main" { print $1; exit }')
  if [ -z "$uri" ]; then
    echo "no apt source for Debian $SUITE main; add one (or set DEBIAN_MIRROR)" >&2
    return 1
  fi
  printf '%s\n' "$uri"
}

apt_proxy() {
  apt-config dump Acquire::http::Proxy | sed -n 's/^Acquire::http::Proxy "\(.*\)";$/\1/p'
}

rootfs=$WORK/rootfs

ensure_rootfs() {
  if [ -f "$rootfs/.complete" ]; then return; fi
  local mirror proxy
  mirror=${DEBIAN_MIRROR:-$(debian_mirror)}
  proxy=$(apt_proxy)
  say "debootstrap --variant=minbase $SUITE from $mirror"
  rm -rf "$rootfs"
  mkdir -p "$WORK"
  http_proxy=${proxy:-${http_proxy:-}} debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log" >&2; return 1; }
  # As Debian's own container images do: no service starts during package installs.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"
  touch "$rootfs/.complete"
}

ensure_base() {
  if have_image "$BASE_IMAGE"; then return; fi
  ensure_rootfs
  say "importing the $SUITE base as $BASE_IMAGE"
  tar --numeric-owner --exclude=./.complete --exclude='./var/lib/apt/lists/*' \
    --exclude='./var/cache/apt/*.bin' -C "$rootfs" -c . \
    | docker import --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
}

# Downloads PACKAGES and what they need beyond the base into DIR, on the host's network,
# through the base's own apt (so the set is exactly what the base lacks).
download_debs() {
  local dir=$1; shift
  ensure_rootfs
  local inside=/tmp/debs
  rm -rf "$rootfs$inside" "$dir"
  mkdir -p "$rootfs$inside" "$dir"
  local apt=(chroot "$rootfs" apt-get -qq -o APT::Sandbox::User=root)
  "${apt[@]}" update
  "${apt[@]}" -o Dir::Cache::Archives="$inside/" install -y --download-only --no-install-recommends "$@" >/dev/null
  mv "$rootfs$inside"/*.deb "$dir/"
  rm -rf "$rootfs$inside" "$rootfs"/var/lib/apt/lists/*
}

build_toxiproxy() {
  local image=$1 version=v${1##*:} ctx=$WORK/toxiproxy
  say "building $image from Toxiproxy's Go module $version"
  rm -rf "$ctx" && mkdir -p "$ctx/bin"
  CGO_ENABLED=0 GOBIN="$ctx/bin" go install \
    -ldflags "-s -w -X github.com/Shopify/toxiproxy/v2.Version=${version#v}" \
    "github.com/Shopify/toxiproxy/v2/cmd/server@$version" \
    "github.com/Shopify/toxiproxy/v2/cmd/cli@$version"
  cp images/toxiproxy/Dockerfile "$ctx/"
  docker build -q -t "$image" "$ctx" >/dev/null
}

build_standin() {
  local image=$1 kind=$2; shift 2
  local ctx=$WORK/$kind
  ensure_base
  say "building the local stand-in $image (Debian $SUITE packages: $*)"
  rm -rf "$ctx" && mkdir -p "$ctx"
  download_debs "$ctx/debs" "$@"
  cp -r "images/$kind/." "$ctx/"
  docker build -q --build-arg "BASE=$BASE_IMAGE" \
    --label "org.opencontainers.image.description=local stand-in for $image, never pushed" \
    -t "$image" "$ctx" >/dev/null
}

status=0
for image in $(wanted_images | sort -u); do
  if have_image "$image"; then
    say "$image: present"
    continue
  fi
  case "$image" in
    ghcr.io/shopify/toxiproxy:*) build_toxiproxy "$image" ;;
    postgres:15*) build_standin "$image" postgres postgresql-15 ;;
    python:3.11*) build_standin "$image" python python3 python3-pip ;;
    *) echo "no local recipe for $image: pull it or add one to $0" >&2; status=1 ;;
  esac
done
exit "$status"
