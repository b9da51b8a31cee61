#!/usr/bin/env bash
# Provision what kopi-docka's test suite and quickstart need on a Debian machine. Idempotent: every
# step checks first and only acts on what is missing, so a second run takes a few seconds.
#
#   1. Debian packages: docker.io docker-compose busybox-static openssl acl attr tar util-linux python3-venv …
#   2. a Docker daemon that answers (starts `dockerd` in the background when nothing listens)
#   3. kopia $KOPIA_VERSION (scripts/versions.env) as /usr/local/bin/kopia — from PATH, the cache,
#      or built from source with Go
#   4. the local test image kd-test-busybox:latest (no registry needed: `docker import` of a rootfs
#      made from Debian's static busybox)
#   5. the backend test servers (scripts/servers.sh: openssh-server, rclone, versitygw built from its
#      Go module and cached under ~/.cache/kopi-docka/)
#
# Usage: scripts/provision.sh [--no-image] [--no-servers] [--kopia-only] [--image-only]
#   --no-image     skip the test image and the test servers (quickstart needs neither)
#   --no-servers   skip step 5
#   --kopia-only   only step 3 (no packages, no daemon, no image, no servers)
#   --image-only   only step 4, on the daemon DOCKER_HOST names (scripts/engine.sh uses it)
#
# Environment (all optional):
#   KOPI_DOCKA_BIN_DIR   where the `kopia` symlink goes            (default /usr/local/bin)
#   KD_TEST_IMAGE        name of the test image                    (default kd-test-busybox:latest)
#   XDG_CACHE_HOME       Kopia build cache root                    (default $HOME/.cache)
#
# Exit codes: 0 ok, 1 failure, 2 usage, 3 Docker daemon unavailable, 4 Kopia unavailable.
#
# About the test image and SIGTERM: busybox `sh`/`sleep` as PID 1 ignore SIGTERM (the kernel drops
# signals to PID 1 that have no handler), so a container running `sleep 3600` waits the whole stop
# timeout and is then SIGKILLed. Test Compose files therefore either
#   - use `init: true` (Compose file format 2.2+ / 3.7+): Docker runs docker-init (tini, shipped as
#     /usr/bin/docker-init by Debian's docker.io, which depends on `tini`) as PID 1, and it forwards
#     SIGTERM to the command, which then dies of the default action; this script verifies it with
#     `docker run --rm --init kd-test-busybox sh -c 'echo ok'`; or
#   - run  sh -c 'trap "exit 0" TERM; while :; do sleep 1; done'  (the shell handles TERM itself and
#     exits within one second).
# test/integration/provision.test.ts checks that both stop in well under the stop timeout.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$SCRIPT_DIR/versions.env"
: "${KOPIA_VERSION:?KOPIA_VERSION missing in scripts/versions.env}"
: "${KOPIA_GO_DIRECTIVE:=1.25.8}"

BIN_DIR="${KOPI_DOCKA_BIN_DIR:-/usr/local/bin}"
TEST_IMAGE="${KD_TEST_IMAGE:-kd-test-busybox:latest}"
# Bump when the rootfs recipe below changes: an image with another revision label is rebuilt.
TEST_IMAGE_REV=2
TEST_IMAGE_LABEL=org.kopi-docka.test-image
DOCKERD_LOG=/var/log/kopi-docka-dockerd.log
KOPIA_CACHE_DIR="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/kopi-docka/kopia-${KOPIA_VERSION}"

DO_PACKAGES=1
DO_DOCKER=1
DO_KOPIA=1
DO_IMAGE=1
DO_SERVERS=1

log() { printf '[provision] %s\n' "$*"; }
die() {
  local code="$1"
  shift
  printf '[provision] ERROR: %s\n' "$*" >&2
  exit "$code"
}

usage() { sed -n '14,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --no-image) DO_IMAGE=0 DO_SERVERS=0 ;;
    --no-servers) DO_SERVERS=0 ;;
    --kopia-only) DO_PACKAGES=0 DO_DOCKER=0 DO_IMAGE=0 DO_SERVERS=0 ;;
    --image-only) DO_PACKAGES=0 DO_DOCKER=0 DO_KOPIA=0 DO_SERVERS=0 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      die 2 "unknown argument: $1"
      ;;
  esac
  shift
done

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

# Sets NEW_TMP_DIR (not printed: a $(…) subshell could not record the directory for cleanup).
NEW_TMP_DIR=""
new_tmp_dir() {
  NEW_TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/kopi-docka-provision.XXXXXX")"
  TMP_DIRS+=("$NEW_TMP_DIR")
}

is_root() { [ "$(id -u)" = 0 ]; }

# One provisioning at a time (test runs started in parallel would otherwise race on apt/dockerd/the
# image). fd 9 is closed for long-lived children (dockerd) so they do not inherit the lock.
if command -v flock >/dev/null 2>&1; then
  exec 9>"${TMPDIR:-/tmp}/kopi-docka-provision.lock"
  if ! flock -n 9; then
    log "another provisioning is running; waiting for it (up to 15 min)"
    flock -w 900 9 || die 1 "timed out waiting for the provisioning lock ${TMPDIR:-/tmp}/kopi-docka-provision.lock"
  fi
fi

# ---------------------------------------------------------------------------------------------------
# 1. Debian packages
# ---------------------------------------------------------------------------------------------------
# systemd: systemd-analyze (verify the generated units) and systemd-notify (sd_notify); python3: the
# tests' unix datagram listener for NOTIFY_SOCKET; python3-venv: the benchmark's virtualenv for the
# original kopi-docka (bench/lib/original.ts).
PACKAGES=(docker.io docker-compose busybox-static openssl acl attr tar util-linux systemd python3 python3-venv)

pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# A package counts as present when dpkg has it, or when what we use from it is already there in
# another form (e.g. docker-ce instead of docker.io: installing docker.io would conflict with it).
pkg_satisfied() {
  if command -v dpkg-query >/dev/null 2>&1 && pkg_installed "$1"; then return 0; fi
  case "$1" in
    docker.io) command -v docker >/dev/null 2>&1 && command -v dockerd >/dev/null 2>&1 ;;
    docker-compose) command -v docker-compose >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

ensure_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    pkg_satisfied "$p" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "packages: all present (${PACKAGES[*]})"
    return 0
  fi
  log "packages: missing ${missing[*]}"
  command -v apt-get >/dev/null 2>&1 || die 1 "apt-get not found: install ${missing[*]} by hand (this script supports Debian)"
  is_root || die 1 "installing ${missing[*]} needs root: re-run as root (sudo bash scripts/provision.sh)"
  # Keep the packages' maintainer scripts from starting services (there is no init system to manage
  # them; dockerd is started below, on our terms).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  log "running: apt-get update"
  apt-get update -qq || die 1 "apt-get update failed"
  log "running: apt-get install -y --no-install-recommends ${missing[*]}"
  apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}" ||
    die 1 "apt-get install ${missing[*]} failed"
  if [ "$POLICY_RC_CREATED" = 1 ]; then
    rm -f /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=0
  fi
  for p in "${missing[@]}"; do
    pkg_satisfied "$p" || die 1 "package $p is still not installed after apt-get install"
  done
  log "packages: installed ${missing[*]}"
}

# ---------------------------------------------------------------------------------------------------
# 2. Docker daemon
# ---------------------------------------------------------------------------------------------------
docker_answers() {
  timeout 20 docker version --format '{{.Server.APIVersion}}' >/dev/null 2>&1
}

ensure_docker() {
  command -v docker >/dev/null 2>&1 || die 3 "the docker CLI is not installed (apt-get install docker.io)"
  if docker_answers; then
    log "docker: daemon answers (API $(docker version --format '{{.Server.APIVersion}}' 2>/dev/null))"
    return 0
  fi
  case "${DOCKER_HOST:-}" in
    "" | unix:///var/run/docker.sock | unix:///run/docker.sock) ;;
    *) die 3 "DOCKER_HOST=$DOCKER_HOST does not answer; not starting a local dockerd for a remote/custom host. Start that daemon, or unset DOCKER_HOST to use a local one." ;;
  esac
  command -v dockerd >/dev/null 2>&1 || die 3 "the Docker daemon does not answer and dockerd is not installed (apt-get install docker.io)"
  is_root || die 3 "the Docker daemon does not answer and starting dockerd needs root: re-run as root"

  local pidfile=/var/run/docker.pid pid="" started_pid=""
  if [ -f "$pidfile" ]; then pid="$(cat "$pidfile" 2>/dev/null || true)"; fi
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    log "docker: dockerd (pid $pid) is running but not answering yet; waiting for it"
  else
    if [ -n "$pid" ]; then
      log "docker: removing stale $pidfile (pid $pid is gone)"
      rm -f "$pidfile"
    fi
    log "docker: daemon does not answer; starting dockerd in the background (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    printf '\n=== %s kopi-docka provision.sh starts dockerd ===\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$DOCKERD_LOG"
    # The daemon outlives this script and the test run: its own session (setsid, nohup), cwd /, output
    # to the log only, and every inherited descriptor above 2 closed (our lock on fd 9, and any pipe a
    # caller such as CI passed down, which it would otherwise hold open for the daemon's lifetime).
    (
      cd /
      for fd in /proc/self/fd/*; do
        fd="${fd##*/}"
        if [ "$fd" -gt 2 ]; then eval "exec ${fd}>&-"; fi
      done
      exec setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null
    ) &
    started_pid=$!
  fi
  local i
  for i in $(seq 1 60); do
    if docker_answers; then
      log "docker: daemon answers after ${i}s (API $(docker version --format '{{.Server.APIVersion}}' 2>/dev/null))"
      return 0
    fi
    if [ -n "$started_pid" ] && ! kill -0 "$started_pid" 2>/dev/null; then
      dockerd_log_tail
      die 3 "dockerd exited right after starting (see $DOCKERD_LOG)"
    fi
    sleep 1
  done
  dockerd_log_tail
  die 3 "dockerd did not answer within 60 s (see $DOCKERD_LOG)"
}

dockerd_log_tail() {
  printf '[provision] last lines of %s:\n' "$DOCKERD_LOG" >&2
  tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------------
# 3. Kopia
# ---------------------------------------------------------------------------------------------------
# Prints the version a kopia binary reports, without a leading "v" (release builds print "0.23.1 build:
# …", `go build` prints "v0.23.1 build: …"); empty when it does not run.
kopia_version_of() {
  local out
  out="$("$1" --version 2>/dev/null </dev/null)" || return 0
  out="${out%%[[:space:]]*}"
  printf '%s\n' "${out#v}"
}

find_go() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [ -x /usr/local/go/bin/go ]; then
    printf '%s\n' /usr/local/go/bin/go
  fi
}

# `go install github.com/kopia/kopia@vX` needs the proxy's @v/list (its deprecation check), which some
# proxies refuse; building inside a throwaway module that requires the pinned version does not.
build_kopia() {
  local go_bin dir
  go_bin="$(find_go)"
  if [ -z "$go_bin" ]; then
    die 4 "kopia v$KOPIA_VERSION is not installed and Go is not available to build it.
  Install kopia $KOPIA_VERSION (https://kopia.io/docs/installation/) so that \`kopia --version\` reports $KOPIA_VERSION,
  or install Go >= 1.25 (https://go.dev/doc/install) and re-run this script to build it from source."
  fi
  new_tmp_dir
  dir="$NEW_TMP_DIR"
  printf 'module kopibuild\n\ngo %s\n\nrequire github.com/kopia/kopia v%s\n' "$KOPIA_GO_DIRECTIVE" "$KOPIA_VERSION" >"$dir/go.mod"
  log "kopia: building v$KOPIA_VERSION from source with $("$go_bin" version) (takes ~3 min without a Go build cache)"
  log "kopia: running (in $dir): GOFLAGS='-mod=mod -buildvcs=false' go build -o $dir/kopia github.com/kopia/kopia"
  if ! (cd "$dir" && GOFLAGS='-mod=mod -buildvcs=false' "$go_bin" build -o "$dir/kopia" github.com/kopia/kopia); then
    die 4 "building kopia v$KOPIA_VERSION with Go failed (see above). Alternatively install kopia $KOPIA_VERSION by hand: https://kopia.io/docs/installation/"
  fi
  local built
  built="$(kopia_version_of "$dir/kopia")"
  [ "$built" = "$KOPIA_VERSION" ] || die 4 "the freshly built kopia reports version '${built}', expected $KOPIA_VERSION"
  mkdir -p "$KOPIA_CACHE_DIR"
  # Copy then rename: the cache never holds a half-written binary.
  cp "$dir/kopia" "$KOPIA_CACHE_DIR/.kopia.tmp.$$"
  chmod 0755 "$KOPIA_CACHE_DIR/.kopia.tmp.$$"
  mv -f "$KOPIA_CACHE_DIR/.kopia.tmp.$$" "$KOPIA_CACHE_DIR/kopia"
  log "kopia: built and cached at $KOPIA_CACHE_DIR/kopia"
}

ensure_kopia() {
  local resolved="" on_path="" v
  on_path="$(command -v kopia 2>/dev/null || true)"
  if [ -n "$on_path" ]; then
    v="$(kopia_version_of "$on_path")"
    if [ "$v" = "$KOPIA_VERSION" ]; then
      resolved="$on_path"
      log "kopia: $on_path reports v$KOPIA_VERSION"
    else
      log "kopia: $on_path reports '${v:-nothing}', not v$KOPIA_VERSION; looking further"
    fi
  fi
  if [ -z "$resolved" ] && [ -x "$KOPIA_CACHE_DIR/kopia" ]; then
    v="$(kopia_version_of "$KOPIA_CACHE_DIR/kopia")"
    if [ "$v" = "$KOPIA_VERSION" ]; then
      resolved="$KOPIA_CACHE_DIR/kopia"
      log "kopia: using cached build $resolved"
    else
      log "kopia: cached $KOPIA_CACHE_DIR/kopia reports '${v:-nothing}'; rebuilding"
    fi
  fi
  if [ -z "$resolved" ]; then
    build_kopia
    resolved="$KOPIA_CACHE_DIR/kopia"
  fi

  local link="$BIN_DIR/kopia"
  if [ "$resolved" = "$link" ]; then
    :
  elif [ -e "$link" ] && [ "$(kopia_version_of "$link")" = "$KOPIA_VERSION" ]; then
    log "kopia: $link already reports v$KOPIA_VERSION"
  else
    if [ -e "$link" ] || [ -L "$link" ]; then
      log "kopia: replacing $link ($(kopia_version_of "$link" || true)) with a symlink to $resolved"
    else
      log "kopia: linking $link -> $resolved"
    fi
    mkdir -p "$BIN_DIR"
    ln -sfn "$resolved" "$link" || die 4 "cannot create $link (run as root, or set KOPI_DOCKA_BIN_DIR)"
  fi
  v="$(kopia_version_of "$link")"
  [ "$v" = "$KOPIA_VERSION" ] || die 4 "$link reports '${v:-nothing}' instead of $KOPIA_VERSION"
  case ":$PATH:" in
    *":$BIN_DIR:"*) ;;
    *) log "kopia: note: $BIN_DIR is not on PATH" ;;
  esac
  log "kopia: ready: $link (v$KOPIA_VERSION)"
}

# ---------------------------------------------------------------------------------------------------
# 4. Test image
# ---------------------------------------------------------------------------------------------------
# Applets the tests rely on (the image links every applet busybox has; these must be among them).
REQUIRED_APPLETS=(sh sleep cat ls echo touch mkdir rm test true false wc sha256sum dd head seq chmod
  chown ln stat find kill)

find_static_busybox() {
  local b
  for b in /bin/busybox /usr/bin/busybox; do
    [ -x "$b" ] || continue
    # A dynamically linked busybox (Debian's `busybox` package) would not run in an empty rootfs.
    if command -v ldd >/dev/null 2>&1; then
      case "$(ldd "$b" 2>&1 || true)" in
        *"not a dynamic executable"* | *"statically linked"*) ;;
        *) continue ;;
      esac
    fi
    printf '%s\n' "$b"
    return 0
  done
  return 1
}

image_smoke_test() {
  local out
  out="$(timeout 60 docker run --rm --init "$TEST_IMAGE" sh -c 'echo ok' 2>&1)" ||
    die 1 "the test image does not run: docker run --rm --init $TEST_IMAGE sh -c 'echo ok' said: $out"
  [ "$out" = ok ] || die 1 "docker run --rm --init $TEST_IMAGE sh -c 'echo ok' printed '$out' instead of 'ok'"
}

build_test_image() {
  local busybox rootfs applet
  busybox="$(find_static_busybox)" || die 1 "no static busybox found at /bin/busybox (apt-get install busybox-static)"
  new_tmp_dir
  rootfs="$NEW_TMP_DIR/rootfs"
  mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/root" "$rootfs/usr" "$rootfs/var/tmp" "$rootfs/home"
  chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
  chmod 0700 "$rootfs/root"
  cp "$busybox" "$rootfs/bin/busybox"
  chmod 0755 "$rootfs/bin/busybox"
  local applets
  applets="$("$busybox" --list)" || die 1 "$busybox --list failed"
  for applet in "${REQUIRED_APPLETS[@]}"; do
    grep -qx "$applet" <<<"$applets" || die 1 "$busybox has no '$applet' applet"
  done
  while IFS= read -r applet; do
    case "$applet" in "" | busybox | */*) continue ;; esac
    ln -s busybox "$rootfs/bin/$applet"
  done <<<"$applets"
  ln -s bin "$rootfs/sbin"
  ln -s ../bin "$rootfs/usr/bin"
  ln -s ../bin "$rootfs/usr/sbin"
  cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
app:x:1000:
nogroup:x:65534:
EOF
  chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"

  local old_id
  old_id="$(docker image inspect -f '{{.Id}}' "$TEST_IMAGE" 2>/dev/null || true)"
  log "image: importing $TEST_IMAGE (rootfs: $busybox + $(wc -l <<<"$applets") applet links)"
  tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf - . |
    docker import \
      --change 'CMD ["sh"]' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change "LABEL $TEST_IMAGE_LABEL=$TEST_IMAGE_REV" \
      --message "kopi-docka test image: Debian busybox-static, recipe rev $TEST_IMAGE_REV" \
      - "$TEST_IMAGE" >/dev/null ||
    die 1 "docker import of the test image failed"
  if [ -n "$old_id" ]; then
    # The previous revision, now untagged; stays if a container still uses it.
    docker rmi "$old_id" >/dev/null 2>&1 || true
  fi
}

ensure_test_image() {
  local rev
  rev="$(docker image inspect -f "{{ index .Config.Labels \"$TEST_IMAGE_LABEL\" }}" "$TEST_IMAGE" 2>/dev/null || true)"
  if [ "$rev" = "$TEST_IMAGE_REV" ]; then
    log "image: $TEST_IMAGE present (recipe rev $rev)"
  else
    if [ -z "$rev" ] && ! docker image inspect "$TEST_IMAGE" >/dev/null 2>&1; then
      log "image: $TEST_IMAGE missing; building it"
    else
      log "image: $TEST_IMAGE has recipe rev '${rev}', want $TEST_IMAGE_REV; rebuilding"
    fi
    build_test_image
  fi
  image_smoke_test
  log "image: ready: docker run --rm --init $TEST_IMAGE sh -c 'echo ok' -> ok"
}

# ---------------------------------------------------------------------------------------------------
started=$SECONDS
[ "$DO_PACKAGES" = 1 ] && ensure_packages
[ "$DO_DOCKER" = 1 ] && ensure_docker
[ "$DO_KOPIA" = 1 ] && ensure_kopia
[ "$DO_IMAGE" = 1 ] && ensure_test_image
if [ "$DO_SERVERS" = 1 ]; then
  # Its own apt step, Go build and cache; idempotent (about a second when everything is there).
  bash "$SCRIPT_DIR/servers.sh" || die 1 "scripts/servers.sh failed (backend test servers)"
fi
log "done in $((SECONDS - started))s"
