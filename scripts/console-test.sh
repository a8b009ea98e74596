#!/usr/bin/env bash
# The operator console in headless Chromium against two real server
# instances (tests/browser/console.test.mjs): installs Debian's Chromium and
# the test's npm packages when missing, then runs it against the release
# binary. Screenshots land in docs/console/.
#   scripts/console-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "installing node and npm (playwright-core wants node 20 or later)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
# The binary and the components it loads (its build script builds them).
test -x target/release/commerce -a -f target/plugins/pricing-bulk.wasm ||
    cargo build --release --bin commerce

cd tests/browser
npm ci --no-audit --no-fund --loglevel=error
CHROMIUM="$(command -v chromium)" npm test
