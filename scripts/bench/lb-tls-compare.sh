#!/usr/bin/env bash
# lb-tls-compare.sh - moat, nginx and haproxy terminating TLS side by side:
# lb-compare.sh with TLS=1 (TLS 1.3, TLS_AES_128_GCM_SHA256, one generated
# ECDSA P-256 certificate for all three, keep-alive, plain HTTP/1.1 to the
# same two backends, pinned as in the HTTP comparison) and moat lb's HTTPS
# listener as the extra LB. moat is built from this checkout into bin/moat
# when missing. lb-compare.sh's knobs apply (ROUNDS, DUR, CONNS, PIN, ...).
#
#   sudo apt-get update && sudo apt-get install -y wrk nginx haproxy openssl curl
#   scripts/bench/lb-tls-compare.sh        # ~3 min
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MOAT=${MOAT:-$ROOT/bin/moat}
PORT=${MOAT_PORT:-18090}
if [[ ! -x $MOAT ]]; then
	(cd "$ROOT" && CGO_ENABLED=0 /usr/local/go/bin/go build -o "$MOAT" ./cmd/moat)
fi
export TLS=1 EXTRA_NAME=${EXTRA_NAME:-moat}
export EXTRA_CMD="$MOAT lb --listen= --https 127.0.0.1:$PORT --tls-cert @RUNDIR@/cert.pem --tls-key @RUNDIR@/key.pem --target 127.0.0.2:9001 --target 127.0.0.3:9001"
exec "$ROOT/scripts/bench/lb-compare.sh" "https://127.0.0.1:$PORT/"
