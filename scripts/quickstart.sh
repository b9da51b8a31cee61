#!/usr/bin/env bash
# From a fresh clone to a first backup (README "From a fresh clone to a first real backup"):
#   provision Docker, docker-compose and Kopia → npm ci → build → init → list --units
#   → the plan (`backup --dry-run`) → ask → backup
# Nothing is stopped without consent: the real backup stops each unit's containers while it is
# snapshotted, so quickstart shows the plan first and asks on a terminal. `--yes` answers yes (for
# scripts). With no terminal and no --yes it stops after the plan, exits 0 and prints how to continue.
#
# On a host with no backup units it offers a demo round trip instead: a small Compose project (one
# busybox service — image built locally, no registry — with a named volume holding one file) is
# created, backed up, deleted with its volume, restored, started from the restored project directory,
# checked (the file is back, byte for byte) and removed again — also when a step fails. The demo's
# restore point stays in the repository (unit "kopi-docka-demo").
#
# Uses kopi-docka's embedded default config (no config file needed): a local filesystem repository
# under /var/lib/kopi-docka/. Run as root on a Debian machine:  sudo bash scripts/quickstart.sh
# Environment is passed through, so KOPI_DOCKA_CONFIG=/path/to/conf selects a config file instead.
#
# Usage: scripts/quickstart.sh [--yes] [backup arguments…]
#   --yes          back up (or run the demo) without asking
#   other arguments go to `backup`, e.g.  bash scripts/quickstart.sh --unit myapp   (or --dry-run: the
#   plan only)
#
# Environment (all optional):
#   KD_QUICKSTART_DEMO        1: the demo round trip even when the host has units; 0: never the demo;
#                             unset: the demo when the host has no units and no backup arguments
#   KD_QUICKSTART_DEMO_NAME   the demo's Compose project (= unit) name     (default kopi-docka-demo)
#   KD_QUICKSTART_DEMO_IMAGE  the demo's local image                       (default kopi-docka-demo:busybox)
#   KD_QUICKSTART_COMPOSE     v1 (docker-compose) or v2 (docker compose) for the demo; default: detected
#                             as kopi-docka does (the first that reports version 2+, else 1.x)
#
# Exit codes: 0 done (also: stopped after the plan, or declined), else the failed step's exit code.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export KOPIA_CHECK_FOR_UPDATES=false

KD=(node "$ROOT/dist/main.js")
DOCS_LINE='quickstart: next: restores: docs/restore.md; every setting: docs/configuration.md; all commands and exit codes: README.md "Commands"'

YES=0
DRY_RUN=0
BACKUP_ARGS=()
for a in "$@"; do
  case "$a" in
    --yes) YES=1 ;;
    *)
      [ "$a" = --dry-run ] && DRY_RUN=1
      BACKUP_ARGS+=("$a")
      ;;
  esac
done

DEMO_MODE="${KD_QUICKSTART_DEMO:-}"
case "$DEMO_MODE" in
  "" | 0 | 1) ;;
  *)
    printf 'quickstart: KD_QUICKSTART_DEMO must be 1, 0 or unset, not "%s"\n' "$DEMO_MODE" >&2
    exit 2
    ;;
esac
DEMO="${KD_QUICKSTART_DEMO_NAME:-kopi-docka-demo}"
if ! [[ "$DEMO" =~ ^[a-z0-9][a-z0-9_-]*$ ]]; then
  printf 'quickstart: KD_QUICKSTART_DEMO_NAME must be lowercase letters, digits, _ and -, not "%s"\n' "$DEMO" >&2
  exit 2
fi
DEMO_IMAGE="${KD_QUICKSTART_DEMO_IMAGE:-kopi-docka-demo:busybox}"

n=0
step_header() {
  n=$((n + 1))
  printf '\n==> [%s] %s\n' "$n" "$1"
}

# The command line as a shell would take it (arguments quoted only where needed).
shown() {
  local out="" a
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+=" $a"; else out+=" '${a//\'/\'\\\'\'}'"; fi
  done
  printf '%s' "${out# }"
}

# run_step TITLE [-C DIR] COMMAND…: prints the title and the command, runs it (in DIR), exits on failure.
run_step() {
  local title="$1" dir=""
  shift
  if [ "$1" = -C ]; then
    dir="$2"
    shift 2
  fi
  step_header "$title"
  if [ -n "$dir" ]; then printf '    $ cd %s && %s\n' "$(shown "$dir")" "$(shown "$@")"; else printf '    $ %s\n' "$(shown "$@")"; fi
  local rc=0
  if [ -n "$dir" ]; then (cd "$dir" && "$@") || rc=$?; else "$@" || rc=$?; fi
  if [ "$rc" -ne 0 ]; then
    printf '\nquickstart: step %s (%s) failed with exit code %s\n' "$n" "$title" "$rc" >&2
    exit "$rc"
  fi
}

# Runs a command quietly and prints its stdout; on failure shows its stderr and exits with its code.
capture() {
  local what="$1"
  shift
  local out rc=0 err
  err="$(mktemp "${TMPDIR:-/tmp}/kopi-docka-quickstart.XXXXXX")"
  out="$("$@" 2>"$err")" || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf 'quickstart: %s failed with exit code %s:\n' "$what" "$rc" >&2
    cat "$err" >&2
    rm -f "$err"
    exit "$rc"
  fi
  rm -f "$err"
  printf '%s' "$out"
}

# Reads JSON on stdin and prints the length of the array at the given property path.
json_length() {
  node -e '
    let s = "";
    process.stdin.on("data", (d) => (s += d)).on("end", () => {
      let v = JSON.parse(s);
      for (const k of process.argv.slice(1)) v = v[k];
      if (!Array.isArray(v)) { console.error("not an array: " + process.argv.slice(1).join(".")); process.exit(1); }
      console.log(v.length);
    });' "$@"
}

# Shell-quoted arguments, for the "how to continue" lines.
quoted_args() {
  local out="" a
  for a in "$@"; do out+=" $(printf '%q' "$a")"; done
  printf '%s' "$out"
}

# Asks $1 on the terminal until the answer is y or n. Returns 0 for yes, 1 for no (Enter, or the end of
# the input, means no).
ask_yes_no() {
  local answer
  while :; do
    printf '%s [y/N] ' "$1"
    if ! IFS= read -r answer; then
      printf '\nquickstart: no answer (input ended)\n'
      return 1
    fi
    case "${answer,,}" in
      y | yes) return 0 ;;
      n | no | "") return 1 ;;
      *) printf '  answer y or n (Enter means no)\n' ;;
    esac
  done
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
run_step "Create (or connect to) the Kopia repository" "${KD[@]}" init
run_step "List the backup units found on this host" "${KD[@]}" list --units

UNITS_JSON="$(capture 'kopi-docka list --units --json' "${KD[@]}" list --units --json)"
UNIT_COUNT="$(printf '%s' "$UNITS_JSON" | json_length units)"
if [ "$DEMO_MODE" = 1 ] || { [ -z "$DEMO_MODE" ] && [ "$UNIT_COUNT" = 0 ] && [ "${#BACKUP_ARGS[@]}" = 0 ]; }; then
  WANT_DEMO=1
else
  WANT_DEMO=0
fi

run_step "The plan: what a backup would do (nothing is stopped yet)" "${KD[@]}" backup --dry-run "${BACKUP_ARGS[@]+"${BACKUP_ARGS[@]}"}"

if [ "$DRY_RUN" = 1 ]; then
  printf '\nquickstart: --dry-run: the plan above; nothing was backed up.\n'
  printf '%s\n' "$DOCS_LINE"
  exit 0
fi

# ---------------------------------------------------------------------------------------------------
# A host with units: ask, then back up
# ---------------------------------------------------------------------------------------------------
if [ "$WANT_DEMO" = 0 ]; then
  PLAN_JSON="$(capture 'kopi-docka backup --dry-run --json' "${KD[@]}" backup --dry-run --json "${BACKUP_ARGS[@]+"${BACKUP_ARGS[@]}"}")"
  PLANNED="$(printf '%s' "$PLAN_JSON" | json_length plan units)"
  if [ "$PLANNED" = 0 ]; then
    printf '\nquickstart: nothing to back up: the plan has no units. Start your Compose stacks or containers, then run: kopi-docka backup\n'
    printf '%s\n' "$DOCS_LINE"
    exit 0
  fi
  ARGS_Q="$(quoted_args "${BACKUP_ARGS[@]+"${BACKUP_ARGS[@]}"}")"
  continue_hint() {
    printf 'To back up these %s unit(s) (each unit'"'"'s containers are stopped while it is snapshotted), run:\n' "$PLANNED"
    printf '  kopi-docka backup%s        (from this clone: node dist/main.js backup%s)\n' "$ARGS_Q" "$ARGS_Q"
    printf 'or run quickstart again with --yes:\n'
    printf '  bash scripts/quickstart.sh --yes%s\n' "$ARGS_Q"
  }
  if [ "$YES" = 0 ]; then
    if [ -t 0 ]; then
      printf '\n'
      if ! ask_yes_no "Back up these $PLANNED units now? this stops each unit's containers while it is snapshotted"; then
        printf '\nquickstart: not backing up; nothing was stopped.\n'
        continue_hint
        printf '%s\n' "$DOCS_LINE"
        exit 0
      fi
    else
      printf '\nquickstart: stopped after the plan (no terminal to ask on, and no --yes): nothing was backed up.\n'
      continue_hint
      printf '%s\n' "$DOCS_LINE"
      exit 0
    fi
  fi
  run_step "Back up ($PLANNED unit(s))" "${KD[@]}" backup "${BACKUP_ARGS[@]+"${BACKUP_ARGS[@]}"}"
  printf '\nquickstart: done: the first backup is in the repository (kopi-docka restore --list shows it).\n'
  printf '%s\n' "$DOCS_LINE"
  exit 0
fi

# ---------------------------------------------------------------------------------------------------
# The demo round trip
# ---------------------------------------------------------------------------------------------------
demo_hint() {
  printf 'To see the whole round trip on a demo stack (a Compose project "%s" is created, backed up,\n' "$DEMO"
  printf 'deleted, restored and removed again; nothing else on this host is stopped), run:\n'
  printf '  bash scripts/quickstart.sh --yes\n'
  printf 'Once your own stacks run on this host, back them up with:\n'
  printf '  kopi-docka backup        (from this clone: node dist/main.js backup)\n'
}

printf '\nquickstart: %s\n' "$(if [ "$UNIT_COUNT" = 0 ]; then printf 'this host has no backup units yet.'; else printf 'KD_QUICKSTART_DEMO=1: the demo round trip (the host'"'"'s %s unit(s) are left alone).' "$UNIT_COUNT"; fi)"
if [ "$YES" = 0 ]; then
  if [ -t 0 ]; then
    if ! ask_yes_no "Run the demo round trip now (create, back up, delete, restore and remove Compose project \"$DEMO\")?"; then
      printf '\nquickstart: no demo; nothing was created or backed up.\n'
      demo_hint
      printf '%s\n' "$DOCS_LINE"
      exit 0
    fi
  else
    printf 'quickstart: stopped after the plan (no terminal to ask on, and no --yes): nothing was created or backed up.\n'
    demo_hint
    printf '%s\n' "$DOCS_LINE"
    exit 0
  fi
fi

# Compose, detected as src/adapters/compose.ts does: by the version it reports, v2 preferred.
compose_major() {
  local out
  out="$(timeout 10 "$@" version --short 2>/dev/null)" || return 1
  out="$(printf '%s\n' "$out" | sed -n '/[^[:space:]]/{p;q;}')"
  [[ "$out" =~ ^[[:space:]]*v?([0-9]+)\.[0-9]+ ]] || return 1
  printf '%s' "${BASH_REMATCH[1]}"
}
COMPOSE=()
case "${KD_QUICKSTART_COMPOSE:-}" in
  v2) COMPOSE=(docker compose) ;;
  v1) COMPOSE=(docker-compose) ;;
  "")
    v1_found=0
    for cand in "docker compose" docker-compose; do
      read -r -a argv <<<"$cand"
      major="$(compose_major "${argv[@]}")" || continue
      if [ "$major" -ge 2 ]; then
        COMPOSE=("${argv[@]}")
        break
      elif [ "$major" = 1 ] && [ "$v1_found" = 0 ]; then
        v1_found=1
        V1=("${argv[@]}")
      fi
    done
    if [ "${#COMPOSE[@]}" = 0 ] && [ "$v1_found" = 1 ]; then COMPOSE=("${V1[@]}"); fi
    ;;
  *)
    printf 'quickstart: KD_QUICKSTART_COMPOSE must be v1 or v2, not "%s"\n' "$KD_QUICKSTART_COMPOSE" >&2
    exit 2
    ;;
esac
if [ "${#COMPOSE[@]}" = 0 ]; then
  printf 'quickstart: the demo needs Docker Compose: neither `docker compose` nor `docker-compose` answered `version --short`\n' >&2
  exit 4
fi

# Refuse to touch a project of that name that is not ours (the cleanup would remove it).
label="label=com.docker.compose.project=$DEMO"
if [ -n "$(docker ps -aq --filter "$label")" ] || docker volume inspect "${DEMO}_data" >/dev/null 2>&1; then
  printf 'quickstart: a Compose project or volume named "%s" already exists on this host; not touching it.\n' "$DEMO" >&2
  printf '  remove it, or choose another demo name: KD_QUICKSTART_DEMO_NAME=other-name bash scripts/quickstart.sh --yes\n' >&2
  exit 1
fi

CONFIG_JSON="$(capture 'kopi-docka config show --json' "${KD[@]}" config show --json)"
STATE_DIR="$(printf '%s' "$CONFIG_JSON" |
  node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>process.stdout.write(String(JSON.parse(s).stateDir??"")))')"
case "$STATE_DIR" in
  /?*) ;;
  *)
    printf 'quickstart: `kopi-docka config show --json` named no absolute state directory ("%s")\n' "$STATE_DIR" >&2
    exit 1
    ;;
esac
RESTORE_ROOT="$STATE_DIR/restore/$DEMO"
if [ -e "$RESTORE_ROOT" ]; then
  printf 'quickstart: %s already exists (a previous restore of unit "%s"); not touching it.\n' "$RESTORE_ROOT" "$DEMO" >&2
  printf '  remove it, or choose another demo name: KD_QUICKSTART_DEMO_NAME=other-name bash scripts/quickstart.sh --yes\n' >&2
  exit 1
fi
IMAGE_BUILT=0
docker image inspect "$DEMO_IMAGE" >/dev/null 2>&1 || IMAGE_BUILT=1
DEMO_DIR=""
RESTORED_DIR=""

demo_cleanup() {
  local rc=$?
  set +e
  printf '\n==> Removing the demo (containers, volume, network, %s, the restore directory%s)\n' \
    "${DEMO_DIR:-its directory}" "$([ "$IMAGE_BUILT" = 1 ] && printf ', image %s' "$DEMO_IMAGE")"
  local d
  for d in "$RESTORED_DIR" "$DEMO_DIR"; do
    if [ -n "$d" ] && [ -f "$d/docker-compose.yml" ]; then
      (cd "$d" && "${COMPOSE[@]}" -p "$DEMO" down -v --remove-orphans -t 10 >/dev/null 2>&1)
    fi
  done
  local ids
  ids="$(docker ps -aq --filter "$label" 2>/dev/null)"
  # shellcheck disable=SC2086 # container ids: one word each
  [ -n "$ids" ] && docker rm -f -v $ids >/dev/null 2>&1
  ids="$(docker volume ls -q --filter "$label" 2>/dev/null)"
  # shellcheck disable=SC2086
  [ -n "$ids" ] && docker volume rm -f $ids >/dev/null 2>&1
  docker volume rm -f "${DEMO}_data" >/dev/null 2>&1
  ids="$(docker network ls -q --filter "$label" 2>/dev/null)"
  # shellcheck disable=SC2086
  [ -n "$ids" ] && docker network rm $ids >/dev/null 2>&1
  [ -n "$DEMO_DIR" ] && rm -rf "$DEMO_DIR"
  rm -rf "$RESTORE_ROOT"
  rmdir "$STATE_DIR/restore" 2>/dev/null
  [ "$IMAGE_BUILT" = 1 ] && docker rmi "$DEMO_IMAGE" >/dev/null 2>&1
  local left=""
  [ -n "$(docker ps -aq --filter "$label" 2>/dev/null)" ] && left+=" containers"
  docker volume inspect "${DEMO}_data" >/dev/null 2>&1 && left+=" volume ${DEMO}_data"
  [ -n "$DEMO_DIR" ] && [ -e "$DEMO_DIR" ] && left+=" $DEMO_DIR"
  [ -e "$RESTORE_ROOT" ] && left+=" $RESTORE_ROOT"
  if [ -n "$left" ]; then
    printf 'quickstart: could not remove all of the demo; left:%s\n' "$left" >&2
    [ "$rc" = 0 ] && rc=1
  else
    printf '    demo removed (its restore point stays in the repository: kopi-docka restore --list)\n'
  fi
  if [ "$rc" = 0 ]; then
    printf '\nquickstart: done: the demo went through backup, deletion and restore with its data intact.\n'
    printf 'Back up your own stacks once they run here: kopi-docka backup (the plan first: kopi-docka backup --dry-run)\n'
  else
    printf '\nquickstart: the demo round trip failed (exit code %s); see above.\n' "$rc" >&2
  fi
  printf '%s\n' "$DOCS_LINE"
  exit "$rc"
}
trap demo_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run_step "Demo: build the local busybox image $DEMO_IMAGE (no registry needed)" \
  env KD_TEST_IMAGE="$DEMO_IMAGE" bash scripts/provision.sh --image-only

DEMO_DIR="$(mktemp -d "${TMPDIR:-/tmp}/kopi-docka-demo.XXXXXX")"
cat >"$DEMO_DIR/docker-compose.yml" <<EOF
services:
  app:
    image: $DEMO_IMAGE
    init: true
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
    volumes:
      - data:/data
volumes:
  data: {}
EOF
CONTENT="kopi-docka demo file, written $(date -u '+%Y-%m-%dT%H:%M:%SZ'), token $RANDOM$RANDOM"

run_step "Demo: create Compose project $DEMO in $DEMO_DIR" -C "$DEMO_DIR" "${COMPOSE[@]}" -p "$DEMO" up -d
run_step "Demo: write a file into its volume ${DEMO}_data" -C "$DEMO_DIR" "${COMPOSE[@]}" -p "$DEMO" \
  exec -T app sh -c 'printf "%s\n" "$1" > /data/hello.txt' sh "$CONTENT"
run_step "Demo: back it up" "${KD[@]}" backup --unit "$DEMO"
run_step "Demo: destroy it (containers and volume)" -C "$DEMO_DIR" "${COMPOSE[@]}" -p "$DEMO" down -v -t 10
if docker volume inspect "${DEMO}_data" >/dev/null 2>&1; then
  printf 'quickstart: volume %s_data still exists after `down -v`\n' "$DEMO" >&2
  exit 1
fi

step_header "Demo: restore it from the repository"
printf '    $ %s\n' "$(shown "${KD[@]}" restore --unit "$DEMO" --backup-id latest --execute --yes)"
rc=0
RESTORE_JSON="$("${KD[@]}" restore --unit "$DEMO" --backup-id latest --execute --yes --json)" || rc=$?
if [ "$rc" -ne 0 ]; then
  printf '\nquickstart: step %s (restore) failed with exit code %s\n' "$n" "$rc" >&2
  exit "$rc"
fi
# projectDir, environment files and Compose files of the restored project, NUL-separated.
mapfile -d '' FIELDS < <(printf '%s' "$RESTORE_JSON" | node -e '
  let s = "";
  process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const r = JSON.parse(s);
    const out = [r.projectDir, String(r.environmentFiles.length), ...r.environmentFiles, ...r.composeFiles];
    process.stdout.write(out.map((x) => x + "\0").join(""));
  });')
RESTORED_DIR="${FIELDS[0]:-}"
if [ -z "$RESTORED_DIR" ] || [ ! -d "$RESTORED_DIR" ]; then
  printf 'quickstart: the restore printed no project directory:\n%s\n' "$RESTORE_JSON" >&2
  exit 1
fi
n_env="${FIELDS[1]}"
UP=("${COMPOSE[@]}")
for ((i = 0; i < n_env; i++)); do UP+=(--env-file "${FIELDS[$((2 + i))]}"); done
UP+=(-p "$DEMO")
for ((i = 2 + n_env; i < ${#FIELDS[@]}; i++)); do UP+=(-f "${FIELDS[$i]}"); done
printf '    restored: project directory %s, volume %s_data\n' "$RESTORED_DIR" "$DEMO"

run_step "Demo: start it from the restored project directory" -C "$RESTORED_DIR" "${UP[@]}" up -d
step_header "Demo: check the file is back"
GOT="$(cd "$RESTORED_DIR" && "${UP[@]}" exec -T app cat /data/hello.txt)" || GOT="(could not read /data/hello.txt)"
if [ "$GOT" != "$CONTENT" ]; then
  printf 'quickstart: the restored file differs:\n  written:  %s\n  restored: %s\n' "$CONTENT" "$GOT" >&2
  exit 1
fi
printf '    /data/hello.txt is back: %s\n' "$GOT"
exit 0
