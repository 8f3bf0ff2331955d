#!/usr/bin/env bash
# Runs moat's checks and tests: gofmt, go mod tidy -diff, go vet, and go test -race on every
# package. Tests that need root skip when not root, and fail instead when
# CI=true (CI runs as root and must run them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
export PATH="/usr/local/go/bin:$PATH"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change: $bad" >&2; exit 1; fi
# go.mod and go.sum say exactly what the code imports.
go mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy" >&2; exit 1; }
go vet ./...
CGO_ENABLED=0 go build -o bin/moat ./cmd/moat
go test -race -count=1 -timeout 20m ./... "$@"
