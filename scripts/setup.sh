#!/usr/bin/env bash
# Installs everything Skiff needs on a Debian machine (run as root): the Debian packages of the
# real components, then the npm dependencies (which bring Node 24 and buf). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(etcd-server etcd-client containerd runc containernetworking-plugins docker-registry skopeo busybox-static iproute2 iptables nftables conntrack python3-grpcio prometheus)
missing=()
for p in "${debs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's packages start their own etcd, docker-registry and prometheus services where systemd runs;
# Skiff starts what it needs itself (tests: on temp dirs and free ports).
if command -v systemctl >/dev/null 2>&1; then
  for svc in etcd docker-registry prometheus; do
    systemctl is-active --quiet "$svc" 2>/dev/null && systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies"
  # `npm install`, not `npm ci`: the registry here lacks the other platforms' optional buf
  # binaries, so the lock cannot list them and `npm ci` would refuse it.
  npm install --no-audit --no-fund --loglevel=error
fi
