#!/usr/bin/env bash
# The README's run command: installs what Skiff needs, then starts a one-machine cluster in the
# foreground and applies the example app (deploy/examples/). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node_modules/.bin/node cmd/skiff.ts up --apply deploy/examples/ "$@"
