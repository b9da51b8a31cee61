#!/usr/bin/env bash
# A current Docker Engine (moby, Engine-29 era: API 1.56, minimum API 1.44) with runc 1.3 and the
# Compose v2 CLI plugin, built from their Go modules (pinned in scripts/versions.env), cached, and run
# BESIDE the host's own Docker daemon — its own socket, data-root, exec-root, pidfile and network
# namespace — so that kopi-docka's tests meet the engine most users run as well as Debian's 20.10.
#
# Usage: scripts/engine.sh <command>
#   build    build what is missing into the cache (dockerd, runc, Compose v2; and fetch Debian 13's
#            docker CLI when the one on PATH cannot speak API >= 1.44); install Compose v2 as the
#            `docker compose` plugin
#   up       build, start the daemon (or take over a running one) and import the test image into it
#   down     stop the daemon (SIGTERM, then SIGKILL after 30 s) and remove its network namespace
#   status   exit 0 when the daemon answers, 1 otherwise
#   host     print the DOCKER_HOST value of the daemon (unix:///run/kopi-docka-engine/docker.sock)
#
# Environment (all optional):
#   KD_ENGINE_NAME     name of the netns and of the run/data directories (default kopi-docka-engine)
#   KD_ENGINE_BIN_DIR  where a docker CLI >= API 1.44 is linked when PATH has none (default /usr/local/bin)
#   XDG_CACHE_HOME     cache root for the built binaries                   (default $HOME/.cache)
#
# Why a network namespace: a second dockerd in the root namespace either fights the first over
# `docker0` or, with --bridge=none, deletes it (the first daemon's containers then fail to start).
# `nsenter --net=…` (not `ip netns exec`, which remounts /sys and breaks the devices cgroup) gives it
# a namespace with a `docker0` of its own. See ../shared/reference/docker-engines.md.
#
# Exit codes: 0 ok, 1 failure, 2 usage, 3 the daemon did not come up.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$SCRIPT_DIR/versions.env"

NAME="${KD_ENGINE_NAME:-kopi-docka-engine}"
RUN_DIR="/run/$NAME"
SOCK="$RUN_DIR/docker.sock"
PIDFILE="$RUN_DIR/dockerd.pid"
EXEC_ROOT="$RUN_DIR/exec"
DATA_ROOT="/var/lib/$NAME"
LOG="/var/log/$NAME.log"
NETNS="$NAME"
CACHE="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/kopi-docka/engine"
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
BIN_DIR="${KD_ENGINE_BIN_DIR:-/usr/local/bin}"
HOST="unix://$SOCK"

log() { printf '[engine] %s\n' "$*"; }
die() {
  local code="$1"
  shift
  printf '[engine] ERROR: %s\n' "$*" >&2
  exit "$code"
}

TMP_DIRS=()
cleanup() {
  local d
  for d in "${TMP_DIRS[@]+"${TMP_DIRS[@]}"}"; do rm -rf "$d"; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Compares "1.41"-style versions: true when $1 >= $2.
api_at_least() {
  local a="$1" b="$2"
  [ "${a%%.*}" -gt "${b%%.*}" ] || { [ "${a%%.*}" -eq "${b%%.*}" ] && [ "${a#*.}" -ge "${b#*.}" ]; }
}

# ---------------------------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------------------------

ensure_build_packages() {
  # runc links libseccomp (cgo); containerd and iptables come with Debian's docker.io (provision.sh);
  # ip (iproute2) makes the network namespace; curl fetches the docker CLI fallback.
  local missing=() p
  for p in libseccomp-dev pkg-config containerd iptables iproute2 curl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die 1 "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" || die 1 "apt-get install ${missing[*]} failed"
}

# go_build <cache-subdir> <binary> <module@version> <package> <cgo 0|1> <tags> <ldflags>: builds once into
# the cache, in a throw-away module (a plain `go install mod@ver` needs the proxy's @v/list, which some
# proxies refuse, and cannot set cgo tags).
go_build() {
  local sub="$1" bin="$2" modver="$3" pkg="$4" cgo="$5" tags="$6" ldflags="$7"
  local out="$CACHE/$sub/$bin"
  if [ -x "$out" ]; then
    log "$bin: cached ($out)"
    return 0
  fi
  command -v go >/dev/null 2>&1 || die 1 "Go is needed to build $modver (https://go.dev/doc/install)"
  local dir
  dir="$(mktemp -d "${TMPDIR:-/tmp}/kopi-docka-engine-build.XXXXXX")"
  TMP_DIRS+=("$dir")
  log "$bin: building $modver ($pkg) — a few minutes on 2 cores without a Go build cache"
  (
    cd "$dir"
    export GOFLAGS='-mod=mod -buildvcs=false' CGO_ENABLED="$cgo"
    go mod init kopidockaengine >/dev/null 2>&1
    go get "$modver" >/dev/null
    go build ${tags:+-tags "$tags"} ${ldflags:+-ldflags "$ldflags"} -o "$dir/$bin" "$pkg"
  ) || die 1 "building $bin from $modver failed (see above)"
  mkdir -p "$CACHE/$sub"
  cp "$dir/$bin" "$out.tmp.$$"
  chmod 0755 "$out.tmp.$$"
  mv -f "$out.tmp.$$" "$out"
  log "$bin: built and cached at $out"
}

# The docker CLI does not build from its Go module here (github.com/docker/cli has no go.mod, and
# modules its vendor.mod pins are refused by the proxy), so the fallback is Debian 13's docker-cli
# package (API 1.45, links only libc >= 2.34), fetched from Debian's archive, checked against the
# pinned SHA-256 and unpacked into the cache — never installed over the system's docker.io.
fetch_docker_cli() {
  local out="$CACHE/docker-cli-$DOCKER_CLI_VERSION/docker"
  if [ -x "$out" ]; then return 0; fi
  local dir deb
  dir="$(mktemp -d "${TMPDIR:-/tmp}/kopi-docka-engine-cli.XXXXXX")"
  TMP_DIRS+=("$dir")
  deb="$dir/docker-cli.deb"
  log "docker CLI: fetching $DOCKER_CLI_DEB_URL"
  curl -fsSL --retry 3 -o "$deb" "$DOCKER_CLI_DEB_URL" || die 1 "cannot download $DOCKER_CLI_DEB_URL"
  printf '%s  %s\n' "$DOCKER_CLI_DEB_SHA256" "$deb" | sha256sum -c --quiet - ||
    die 1 "$DOCKER_CLI_DEB_URL does not have the pinned SHA-256 $DOCKER_CLI_DEB_SHA256"
  dpkg-deb -x "$deb" "$dir/x" || die 1 "cannot unpack $deb"
  mkdir -p "$(dirname "$out")"
  cp "$dir/x/usr/bin/docker" "$out.tmp.$$"
  chmod 0755 "$out.tmp.$$"
  mv -f "$out.tmp.$$" "$out"
}

docker_cli_api() {
  # The newest API the docker CLI on PATH speaks ("" when there is none). Not `.Client.APIVersion`
  # against a live daemon: that is the version negotiated with it (1.41 with Debian's 20.10).
  DOCKER_HOST=unix:///nonexistent docker version --format '{{.Client.DefaultAPIVersion}}' 2>/dev/null |
    head -n 1 || true
}

cmd_build() {
  ensure_build_packages
  go_build "moby-$MOBY_VERSION" dockerd "github.com/moby/moby/v2@$MOBY_VERSION" \
    github.com/moby/moby/v2/cmd/dockerd 0 "" \
    "-X github.com/moby/moby/v2/dockerversion.Version=${MOBY_VERSION#v} -X github.com/moby/moby/v2/dockerversion.GitCommit=gomod"
  go_build "runc-$RUNC_VERSION" runc "github.com/opencontainers/runc@$RUNC_VERSION" \
    github.com/opencontainers/runc 1 seccomp ""
  go_build "compose-$COMPOSE_VERSION" docker-compose "github.com/docker/compose/v2@$COMPOSE_VERSION" \
    github.com/docker/compose/v2/cmd 0 "" "-X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION"

  # `docker compose`: the plugin directory every docker CLI searches, whatever $HOME is.
  mkdir -p "$PLUGIN_DIR"
  if [ "$(readlink "$PLUGIN_DIR/docker-compose" 2>/dev/null || true)" != "$CACHE/compose-$COMPOSE_VERSION/docker-compose" ]; then
    ln -sfn "$CACHE/compose-$COMPOSE_VERSION/docker-compose" "$PLUGIN_DIR/docker-compose"
    log "compose: installed as the docker CLI plugin $PLUGIN_DIR/docker-compose"
  fi

  # A docker CLI that speaks >= 1.44 (a 20.10 CLI is refused by Engine 29); it still talks to 20.10.
  local api
  api="$(docker_cli_api)"
  if [ -n "$api" ] && api_at_least "$api" "$ENGINE_MIN_API_VERSION"; then
    log "docker CLI: $(command -v docker) speaks API $api"
  else
    fetch_docker_cli
    mkdir -p "$BIN_DIR"
    ln -sfn "$CACHE/docker-cli-$DOCKER_CLI_VERSION/docker" "$BIN_DIR/docker"
    hash -r
    api="$(docker_cli_api)"
    if [ -z "$api" ] || ! api_at_least "$api" "$ENGINE_MIN_API_VERSION"; then
      die 1 "$BIN_DIR/docker ($DOCKER_CLI_VERSION) is not the docker found first on PATH ($(command -v docker)); put $BIN_DIR before it"
    fi
    log "docker CLI: $BIN_DIR/docker -> Debian's docker-cli $DOCKER_CLI_VERSION (API $api)"
  fi
}

# ---------------------------------------------------------------------------------------------------
# up / down
# ---------------------------------------------------------------------------------------------------

answers() {
  DOCKER_HOST="$HOST" timeout 20 docker version --format '{{.Server.APIVersion}}' >/dev/null 2>&1
}

daemon_pid() {
  local pid=""
  [ -f "$PIDFILE" ] && pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then printf '%s\n' "$pid"; fi
}

ensure_netns() {
  if [ ! -e "/run/netns/$NETNS" ]; then
    ip netns add "$NETNS" || die 1 "ip netns add $NETNS failed"
  fi
  ip netns exec "$NETNS" ip link set lo up
}

cmd_up() {
  cmd_build
  mkdir -p "$RUN_DIR"
  local pid
  pid="$(daemon_pid)"
  if [ -n "$pid" ] && answers; then
    log "daemon: already running (pid $pid), taking it over"
  else
    if [ -n "$pid" ]; then
      log "daemon: pid $pid does not answer; stopping it before starting anew"
      stop_daemon
    fi
    rm -f "$PIDFILE" "$SOCK"
    ensure_netns
    mkdir -p "$DATA_ROOT" "$EXEC_ROOT" "$(dirname "$LOG")"
    printf '\n=== %s kopi-docka engine.sh starts dockerd ===\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$LOG"
    log "daemon: starting in netns $NETNS on $SOCK (log: $LOG)"
    # Outlives this script: own session, cwd /, every inherited descriptor above 2 closed.
    (
      cd /
      for fd in /proc/self/fd/*; do
        fd="${fd##*/}"
        if [ "$fd" -gt 2 ]; then eval "exec ${fd}>&-"; fi
      done
      PATH="$CACHE/runc-$RUNC_VERSION:$PATH" DOCKER_MIN_API_VERSION="$ENGINE_MIN_API_VERSION" \
        exec setsid nohup nsenter --net="/run/netns/$NETNS" \
        "$CACHE/moby-$MOBY_VERSION/dockerd" \
        -H "$HOST" --group root \
        --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT" --pidfile "$PIDFILE" \
        --add-runtime "kd-runc=$CACHE/runc-$RUNC_VERSION/runc" --default-runtime kd-runc \
        >>"$LOG" 2>&1 </dev/null
    ) &
    local started=$! i
    for i in $(seq 1 90); do
      answers && break
      if ! kill -0 "$started" 2>/dev/null; then
        tail -n 30 "$LOG" >&2 || true
        die 3 "dockerd exited right after starting (see $LOG)"
      fi
      sleep 1
    done
    answers || {
      tail -n 30 "$LOG" >&2 || true
      die 3 "dockerd did not answer on $SOCK within 90 s (see $LOG)"
    }
  fi
  log "daemon: $(DOCKER_HOST="$HOST" docker version --format 'engine {{.Server.Version}}, API {{.Server.APIVersion}} (minimum {{.Server.MinAPIVersion}})')"
  DOCKER_HOST="$HOST" bash "$SCRIPT_DIR/provision.sh" --image-only
  log "ready: DOCKER_HOST=$HOST"
}

stop_daemon() {
  local pid i
  pid="$(daemon_pid)"
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 1
  done
  log "daemon: pid $pid still running after 30 s; SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 1
}

# Mounts the daemon leaves behind in the host's mount namespace (its data-root is bind-mounted onto
# itself; overlay and shm mounts of containers it could not clean up), deepest first.
unmount_leftovers() {
  local m
  awk -v a="$DATA_ROOT" -v b="$EXEC_ROOT" '$2 == a || index($2, a "/") == 1 || $2 == b || index($2, b "/") == 1 { print $2 }' \
    /proc/self/mounts | sort -r | while IFS= read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done
}

cmd_down() {
  stop_daemon
  unmount_leftovers
  rm -f "$PIDFILE" "$SOCK"
  # Containers' shims and the daemon's own containerd end with it; the netns goes last.
  if [ -e "/run/netns/$NETNS" ]; then ip netns delete "$NETNS" 2>/dev/null || true; fi
  log "daemon: stopped"
}

[ "$(id -u)" = 0 ] || die 1 "run as root: the engine needs its own network namespace and data root"
case "${1:-}" in
  build) cmd_build ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) answers ;;
  host) printf '%s\n' "$HOST" ;;
  *)
    sed -n '7,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
