#!/usr/bin/env bash
# Installs what moat and its tests need on a fresh Debian machine of this
# kind (Go is already at /usr/local/go). Safe to run again.
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH"
need=()
command -v ip >/dev/null      || need+=(iproute2)
command -v nft >/dev/null     || need+=(nftables)
command -v ssh >/dev/null     || need+=(openssh-client)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null    || need+=(curl)
command -v ss >/dev/null      || need+=(iproute2)
# scp's default (SFTP) protocol on instances needs an sftp-server binary.
[ -x /usr/lib/openssh/sftp-server ] || need+=(openssh-sftp-server)
if [ "${1:-}" = test ]; then
  command -v chromium >/dev/null || need+=(chromium)   # the browser tests
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "moat: missing packages: ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
go version >/dev/null
