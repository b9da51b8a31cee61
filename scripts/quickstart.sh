#!/usr/bin/env bash
# One command from a fresh clone to a first real backup (README "Quickstart"):
#   provision Docker, docker-compose and Kopia → npm ci → build → init → list --units → backup
# Uses kopi-docka's embedded default config (no config file needed): a local filesystem repository
# under /var/lib/kopi-docka/. Run as root on a Debian machine:  sudo bash scripts/quickstart.sh
# Environment is passed through, so KOPI_DOCKA_CONFIG=/path/to/conf selects a config file instead.
# Arguments are passed to `backup`, e.g.  bash scripts/quickstart.sh --unit myapp   (or --dry-run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export KOPIA_CHECK_FOR_UPDATES=false

n=0
run_step() {
  local title="$1"
  shift
  n=$((n + 1))
  printf '\n==> [%s/6] %s\n    $ %s\n' "$n" "$title" "$*"
  local rc=0
  "$@" || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '\nquickstart: step %s (%s) failed with exit code %s\n' "$n" "$title" "$rc" >&2
    exit "$rc"
  fi
}

if [ "$(id -u)" != 0 ]; then
  printf 'quickstart: warning: not root; installing packages, starting dockerd and stopping containers need root\n' >&2
fi

run_step "Provision Docker, docker-compose and Kopia" bash scripts/provision.sh --no-image

# `npm ci` on a fresh clone; skipped when node_modules is already current with package-lock.json.
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] ||
  [ package-lock.json -nt node_modules/.package-lock.json ]; then
  run_step "Install dependencies" npm ci --no-audit --no-fund
else
  run_step "Install dependencies (node_modules is current; not reinstalling)" true
fi

run_step "Build" npm run --silent build
run_step "Create (or connect to) the Kopia repository" node dist/main.js init
run_step "List the backup units found on this host" node dist/main.js list --units
if [ $# -gt 0 ]; then
  run_step "Back up ($*)" node dist/main.js backup "$@"
else
  run_step "Back up every unit" node dist/main.js backup
fi

printf '\nquickstart: done: the first backup is in the repository. See README.md for restores and scheduling.\n'
