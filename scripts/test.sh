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

# The platform-neutral half of the CLI (validate, plan, template, deploy, ...)
# on macOS and Windows: cross-compile and vet the CLI, and vet (tests
# included) every package that builds there. Their tests cannot run on this
# Linux machine; -tags portable runs the CLI's own tests with the Linux-only
# commands compiled out. Packages that need Linux (netlink, nftables,
# namespaces, Linux syscalls), and those whose tests do, are listed here.
linux_only='/internal/(daemon|egress|instance|instancessh|vpc|secgroup/nft)$'
linux_tests='/internal/(lb|albconformance|bastion)$'
portable=$(go list ./... | grep -Ev "$linux_only|/cmd/moat$")
for target in darwin/amd64 darwin/arm64 windows/amd64; do
  export GOOS=${target%/*} GOARCH=${target#*/}
  CGO_ENABLED=0 go build -o /dev/null ./cmd/moat
  go vet ./cmd/moat $(echo "$portable" | grep -Ev "$linux_tests")
  go build $(echo "$portable" | grep -E "$linux_tests")
done
unset GOOS GOARCH
go test -count=1 -tags portable ./cmd/moat
go test -race -count=1 -timeout 30m ./... "$@"
