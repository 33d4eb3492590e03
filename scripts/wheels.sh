#!/usr/bin/env bash
# Wheels of the service's runtime dependencies (pyproject's `service` extra), built
# on the host into images/wheels/ for the Dockerfile, which installs them with
# `pip install --no-index`: the image build needs no network, here or in GitHub Actions.
# The wheels must fit the image's Python, so $PYTHON must be the version the Dockerfile's
# base names (python:X.Y-...).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
OUT=images/wheels

want=$(awk 'toupper($1) == "FROM" { split($2, a, ":"); split(a[2], v, "-"); print v[1]; exit }' Dockerfile)
have=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [ "$want" != "$have" ]; then
  echo "the Dockerfile's base runs Python $want but $PYTHON is $have: wheels would not fit" >&2
  exit 1
fi

printf '==> %s\n' "wheels of the service's dependencies into $OUT/" >&2
rm -rf "$OUT"
mkdir -p "$OUT"
"$PYTHON" - >"$OUT/requirements.txt" <<'PY'
import tomllib

with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["service"]))
PY
"$PYTHON" -m pip wheel -q --wheel-dir "$OUT" -r "$OUT/requirements.txt"
