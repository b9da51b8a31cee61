#!/usr/bin/env bash
# THE one command that runs kopi-docka's whole test suite (`npm test`, `.ci/run`). On a fresh Debian
# machine it provisions what is missing (Debian's Docker 20.10 and docker-compose v1, Kopia, the test
# image, and a current Docker Engine with Compose v2 built from Go modules — scripts/engine.sh), then:
#   npm ci (when needed) → provision → current engine → build → lint → typecheck → unit tests →
#   integration tests against each engine
# It stops at the first failing step, exits non-zero, and always prints a summary.
# Integration tests drive real Docker daemons: run as root.
#
# KD_TEST_ENGINES   the engines the integration tests run against, in order (default "current debian"):
#                     current  moby Engine-29 era (API 1.56, refuses clients below 1.44) + `docker compose`
#                              v2, on its own socket (DOCKER_HOST=unix:///run/kopi-docka-engine/docker.sock)
#                     debian   Debian 12's docker.io 20.10 (API 1.41) + docker-compose 1.29 (Compose v1)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Kopia must never phone home from tests, whoever spawns it.
export KOPIA_CHECK_FOR_UPDATES=false

INTEGRATION_TIMEOUT_MS="${KD_TEST_TIMEOUT_MS:-600000}"

RESULTS=()
CURRENT=""
STEP_STARTED=0
SUITE_STARTED=$SECONDS

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
if [ -n "${NO_COLOR:-}" ] || [ ! -t 1 ]; then
  say() { printf '\n==> %s\n' "$*"; }
fi

summary() {
  local rc=$? r
  trap - EXIT
  printf '\n==================== kopi-docka test summary ====================\n'
  for r in "${RESULTS[@]+"${RESULTS[@]}"}"; do printf '  %s\n' "$r"; done
  if [ "$rc" -ne 0 ]; then
    if [ -n "$CURRENT" ]; then
      printf '  FAIL  %-30s (%ss, exit %s)\n' "$CURRENT" "$((SECONDS - STEP_STARTED))" "$rc"
    fi
    printf 'RESULT: FAILED (exit %s) after %ss\n' "$rc" "$((SECONDS - SUITE_STARTED))"
  else
    printf 'RESULT: PASSED in %ss\n' "$((SECONDS - SUITE_STARTED))"
  fi
  exit "$rc"
}
trap summary EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# step <name> <command...>: runs one step; a failure ends the script (set -e) and the summary says where.
step() {
  local name="$1"
  shift
  CURRENT="$name"
  STEP_STARTED=$SECONDS
  say "[$name] $*"
  "$@"
  RESULTS+=("$(printf 'ok    %-30s (%ss)' "$name" "$((SECONDS - STEP_STARTED))")")
  CURRENT=""
}

skip() {
  RESULTS+=("$(printf 'skip  %-30s (%s)' "$1" "$2")")
  say "[$1] skipped: $2"
}

if [ "$(id -u)" != 0 ]; then
  printf 'warning: not running as root; provisioning and the Docker integration tests will likely fail\n' >&2
fi

# node_modules is (re)installed when missing or older than package-lock.json (npm writes
# node_modules/.package-lock.json on every install).
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] ||
  [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "npm ci" npm ci --no-audit --no-fund
else
  skip "npm ci" "node_modules is up to date with package-lock.json"
fi

ENGINES="${KD_TEST_ENGINES:-current debian}"
for e in $ENGINES; do
  case "$e" in
    current | debian) ;;
    *)
      printf 'KD_TEST_ENGINES: unknown engine "%s" (expected: current, debian)\n' "$e" >&2
      exit 2
      ;;
  esac
done

step "provision" bash scripts/provision.sh
case " $ENGINES " in
  *" current "*) step "current engine" bash scripts/engine.sh up ;;
  *) skip "current engine" "KD_TEST_ENGINES=$ENGINES" ;;
esac
step "build" npm run --silent build
step "lint" npm run --silent lint
step "typecheck" npm run --silent typecheck

shopt -s nullglob
unit_tests=(test/unit/*.test.ts)
integration_tests=(test/integration/*.test.ts)
shopt -u nullglob

if [ ${#unit_tests[@]} -gt 0 ]; then
  step "unit tests (${#unit_tests[@]} files)" \
    node --import tsx --test --test-reporter=spec "${unit_tests[@]}"
else
  skip "unit tests" "no test/unit/*.test.ts"
fi

# The tests and the CLI they start reach the engine through DOCKER_HOST; KD_TEST_COMPOSE tells the
# helpers which Compose to drive (test/integration/helpers.ts).
integration=(node --import tsx --test --test-reporter=spec --test-concurrency=1
  --test-timeout="$INTEGRATION_TIMEOUT_MS" "${integration_tests[@]+"${integration_tests[@]}"}")

if [ ${#integration_tests[@]} -eq 0 ]; then
  skip "integration tests" "no test/integration/*.test.ts"
fi
for e in $ENGINES; do
  [ ${#integration_tests[@]} -gt 0 ] || break
  if [ "$e" = current ]; then
    step "integration: current engine + Compose v2 (${#integration_tests[@]} files)" \
      env DOCKER_HOST="$(bash scripts/engine.sh host)" KD_TEST_COMPOSE=v2 "${integration[@]}"
  else
    step "integration: Debian docker.io 20.10 + Compose v1 (${#integration_tests[@]} files)" \
      env -u DOCKER_HOST KD_TEST_COMPOSE=v1 "${integration[@]}"
  fi
done
