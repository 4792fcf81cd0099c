#!/bin/sh
# Install the Unleash server used by the sandbox and the tests into <repo>/.cache/unleash.
#
# Idempotent: does nothing when node_modules/unleash-server is already at the pinned version.
# unleash-server 7.5.1 is the newest release that supports node 20 (7.6+ needs node >= 22);
# --save-exact keeps a later install from resolving ^7.5.1 to 7.6.x.
# Usage: scripts/install-unleash.sh [DIR]   (default: <repo>/.cache/unleash)
set -eu

VERSION=7.5.1
REPO=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
DIR=${1:-$REPO/.cache/unleash}
PKG=$DIR/node_modules/unleash-server/package.json

if [ -f "$PKG" ] && node -e "process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)" "$PKG" "$VERSION"; then
    echo "unleash-server $VERSION already installed in $DIR"
    exit 0
fi

command -v node >/dev/null || { echo "install-unleash: node (v20) is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "install-unleash: npm is required" >&2; exit 1; }

mkdir -p "$DIR"
cd "$DIR"
if [ ! -f package.json ]; then
    printf '{\n  "name": "killswitch-unleash",\n  "private": true,\n  "description": "Unleash server for the Killswitch sandbox and tests"\n}\n' > package.json
fi
npm install "unleash-server@$VERSION" --save-exact --no-audit --no-fund --loglevel=error
node -e "const v = require(process.argv[1]).version; if (v !== process.argv[2]) { console.error('install-unleash: got unleash-server ' + v); process.exit(1) }" "$PKG" "$VERSION"
echo "unleash-server $VERSION installed in $DIR"
