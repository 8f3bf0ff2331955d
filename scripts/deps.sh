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
command -v nsenter >/dev/null  || need+=(util-linux)  # moat ssh into isolated instances
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null    || need+=(curl)
command -v ss >/dev/null      || need+=(iproute2)
# scp's default (SFTP) protocol on instances needs an sftp-server binary.
[ -x /usr/lib/openssh/sftp-server ] || need+=(openssh-sftp-server)
if [ "${1:-}" = test ]; then
  command -v chromium >/dev/null || need+=(chromium)   # the browser tests
  # sshd -t/-T check the bastion's rendered sshd configuration (awscfn).
  [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v unshare >/dev/null || need+=(util-linux)
  command -v useradd >/dev/null || need+=(passwd)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "moat: missing packages: ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The AWS tests run moat deploy against moto (an AWS emulator) and lint
# the golden templates with cfn-lint; both are Python tools, installed with
# pip (PyPI), not apt. Say how to get them; the tests that need them skip
# without them, and fail in CI (CI=true).
if [ "${1:-}" = test ]; then
  missing=()
  command -v moto_server >/dev/null || missing+=("moto[server]>=5.2")
  command -v cfn-lint >/dev/null    || missing+=("cfn-lint>=1.51")
  command -v aws >/dev/null         || missing+=("awscli")
  if [ ${#missing[@]} -gt 0 ]; then
    echo "moat: missing Python tools for the AWS tests: ${missing[*]}" >&2
    echo "  install them with: python3 -m pip install$(printf " '%s'" "${missing[@]}")" >&2
    echo "  (or pipx install for each; they must be on PATH)" >&2
    if [ "${CI:-}" = true ]; then exit 1; fi
  fi
fi
go version >/dev/null
