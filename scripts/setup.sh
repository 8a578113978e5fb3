#!/usr/bin/env bash
# Installs everything Skiff needs on a Debian machine (run as root): the Debian packages of the
# real components, then the npm dependencies (which bring Node 24 and buf). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(etcd-server)
missing=()
for p in "${debs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts its own etcd service on 2379; Skiff starts etcd itself.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies"
  # `npm install`, not `npm ci`: the registry here lacks the other platforms' optional buf
  # binaries, so the lock cannot list them and `npm ci` would refuse it.
  npm install --no-audit --no-fund --loglevel=error
fi
