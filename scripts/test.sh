#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, generated code freshness, proto lint, type-check,
# lint, then every test (unit, and integration against real etcd). Prints a closing
# "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH"   # Node 24 from the `node` npm package, first

echo "== generated code is fresh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
buf generate --output "$tmp"
if ! diff -r "$tmp/gen" gen >/dev/null; then
  diff -r "$tmp/gen" gen | head -20
  echo "gen/ is stale: run 'npm run generate' and commit the result" >&2
  exit 1
fi

echo "== buf lint";   buf lint
echo "== typecheck";  tsc --noEmit
echo "== eslint";     eslint --max-warnings 0 .
echo "== tests"
mkdir -p .state
status=0
vitest run --reporter=default --reporter=json --outputFile.json=.state/vitest.json || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(".state/vitest.json", "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
  // A file whose set-up failed reports its tests as skipped: name it, so nothing hides there.
  for (const f of r.testResults) if (f.status === "failed" && f.message) console.log(`failed file ${f.name.replace(process.cwd() + "/", "")}: ${f.message.split("\n")[0]}`);
  if (r.numTotalTests === 0) { console.error("no tests ran"); process.exit(1); }
' || status=1
exit "$status"
