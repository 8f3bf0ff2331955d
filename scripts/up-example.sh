#!/usr/bin/env bash
# Builds moat and runs the bundled example stack in the foreground:
# the app is served on http://127.0.0.1:8080/ and the bastion on
# 127.0.0.1:2222. Ctrl-C tears everything down. Needs root (network
# namespaces and nftables).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export PATH="/usr/local/go/bin:$PATH"
CGO_ENABLED=0 go build -o bin/moat ./cmd/moat
exec bin/moat up -f examples/realtime/moat.yaml "$@"
