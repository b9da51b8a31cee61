#!/usr/bin/env bash
# Provision the servers the backend tests start on 127.0.0.1 (test/servers/*.ts). Idempotent: every
# step checks first, so a second run takes about a second.
#
#   1. Debian packages: openssh-server (a second sshd for SFTP), rclone (`rclone serve webdav`)
#   2. versitygw $VERSITYGW_VERSION (scripts/versions.env), an S3 gateway over a POSIX directory, built
#      from its Go module and cached as ~/.cache/kopi-docka/versitygw-<version>/versitygw
#      (cold Go module + build cache: 140 s CPU, 4 min 21 s wall measured on 2 busy cores;
#      77 s with a module cache warmed by the Kopia build; instant once cached)
#
# Nothing here is started: the tests start each server on a free port and stop it themselves.
#
# Usage: scripts/servers.sh [--print-versitygw]
#   --print-versitygw   print the path of the cached versitygw binary (empty + exit 1 when missing)
#
# Environment (optional): XDG_CACHE_HOME (cache root, default $HOME/.cache).
# Exit codes: 0 ok, 1 failure, 2 usage.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$SCRIPT_DIR/versions.env"
: "${VERSITYGW_VERSION:?VERSITYGW_VERSION missing in scripts/versions.env}"
: "${VERSITYGW_GO_DIRECTIVE:=1.25.0}"

CACHE_ROOT="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/kopi-docka"
VERSITYGW_DIR="$CACHE_ROOT/versitygw-${VERSITYGW_VERSION}"
VERSITYGW_BIN="$VERSITYGW_DIR/versitygw"

log() { printf '[servers] %s\n' "$*"; }
die() {
  printf '[servers] ERROR: %s\n' "$*" >&2
  exit 1
}

case "${1:-}" in
  "") ;;
  --print-versitygw)
    if [ -x "$VERSITYGW_BIN" ]; then
      printf '%s\n' "$VERSITYGW_BIN"
      exit 0
    fi
    exit 1
    ;;
  -h | --help)
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    printf 'unknown argument: %s\n' "$1" >&2
    exit 2
    ;;
esac

TMP_DIRS=()
POLICY_RC_CREATED=0
cleanup() {
  local d
  for d in "${TMP_DIRS[@]+"${TMP_DIRS[@]}"}"; do rm -rf "$d"; done
  if [ "$POLICY_RC_CREATED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------------
# 1. Debian packages
# ---------------------------------------------------------------------------------------------------
PACKAGES=(openssh-server openssh-client rclone)

have_cmd_for() {
  case "$1" in
    openssh-server) [ -x /usr/sbin/sshd ] ;;
    openssh-client) command -v ssh-keygen >/dev/null 2>&1 ;;
    rclone) command -v rclone >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

ensure_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    have_cmd_for "$p" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "packages: all present (${PACKAGES[*]})"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} by hand"
  [ "$(id -u)" = 0 ] || die "installing ${missing[*]} needs root"
  # Keep the maintainer scripts from starting the system sshd: the tests run their own on a free port.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  log "running: apt-get update"
  apt-get update -qq || die "apt-get update failed"
  log "running: apt-get install -y --no-install-recommends ${missing[*]}"
  apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}" ||
    die "apt-get install ${missing[*]} failed"
  for p in "${missing[@]}"; do
    have_cmd_for "$p" || die "package $p is still missing after apt-get install"
  done
  log "packages: installed ${missing[*]}"
}

# ---------------------------------------------------------------------------------------------------
# 2. versitygw
# ---------------------------------------------------------------------------------------------------
find_go() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [ -x /usr/local/go/bin/go ]; then
    printf '%s\n' /usr/local/go/bin/go
  fi
}

ensure_versitygw() {
  if [ -x "$VERSITYGW_BIN" ] && "$VERSITYGW_BIN" --version >/dev/null 2>&1; then
    log "versitygw: using cached $VERSITYGW_BIN"
    return 0
  fi
  local go_bin dir started
  go_bin="$(find_go)"
  [ -n "$go_bin" ] || die "versitygw $VERSITYGW_VERSION is not cached and Go (>= $VERSITYGW_GO_DIRECTIVE) is not installed to build it"
  dir="$(mktemp -d "${TMPDIR:-/tmp}/kopi-docka-servers.XXXXXX")"
  TMP_DIRS+=("$dir")
  # A throwaway module requiring the pinned version (as for Kopia in provision.sh): no @v/list needed.
  printf 'module serversbuild\n\ngo %s\n\nrequire github.com/versity/versitygw %s\n' \
    "$VERSITYGW_GO_DIRECTIVE" "$VERSITYGW_VERSION" >"$dir/go.mod"
  started=$SECONDS
  log "versitygw: building $VERSITYGW_VERSION with $("$go_bin" version) (2-4 min on 2 cores without a Go cache)"
  if ! (cd "$dir" && CGO_ENABLED=0 GOFLAGS='-mod=mod -buildvcs=false' "$go_bin" build -o "$dir/versitygw" \
    github.com/versity/versitygw/cmd/versitygw); then
    die "building versitygw $VERSITYGW_VERSION failed (see above)"
  fi
  mkdir -p "$VERSITYGW_DIR"
  cp "$dir/versitygw" "$VERSITYGW_DIR/.versitygw.tmp.$$"
  chmod 0755 "$VERSITYGW_DIR/.versitygw.tmp.$$"
  mv -f "$VERSITYGW_DIR/.versitygw.tmp.$$" "$VERSITYGW_BIN"
  log "versitygw: built in $((SECONDS - started))s, cached at $VERSITYGW_BIN"
}

started=$SECONDS
ensure_packages
ensure_versitygw
log "done in $((SECONDS - started))s"
