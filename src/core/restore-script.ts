/**
 * The safe restore script for one volume or bind mount: a bash file a person can read and run, and the
 * very same file `restore --execute` runs. It stops the containers using the data, keeps a safety copy
 * of what is there, streams the snapshot back (direct or tar), re-applies what Kopia does not keep
 * (xattrs, ACLs, hard links from the sidecar) and starts again what it stopped — also on failure.
 */

import { dirname } from 'node:path';

/** Single-quote for bash: the value can never be interpreted. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface ScriptInput {
  unit: string;
  backupId: string;
  kind: 'volume' | 'bind';
  /** Volume name, or the bind's original host path. */
  name: string;
  /** Where the data goes: the volume's mountpoint is looked up at run time; binds use this path. */
  target: string;
  /** The data is one file (a file bind mount), not a directory. */
  isFile: boolean;
  format: 'dir' | 'tar';
  snapshotId: string;
  /** For tar: `<rootObj>/<stream name>`. */
  streamObject?: string | undefined;
  /** kopia argv prefix up to (not including) the subcommand's positionals, per subcommand. */
  kopiaRestore: (snapshot: string, target: string) => string[];
  kopiaShow: (object: string) => string[];
  /** Environment for kopia (no password: that comes from KOPIA_PASSWORD or passwordFile). */
  kopiaEnv: Record<string, string>;
  passwordFile: string | undefined;
  safetyFile: string;
  /** Absolute sidecar directory (direct mode), if captured. */
  sidecarDir?: string | undefined;
  hardLinks: string[][];
  hasXattrs: boolean;
  hasAcls: boolean;
  /** Containers that used this data when it was backed up. */
  containers: string[];
  /** Labels for a volume that must be created (Compose recognises it as its own). */
  volumeLabels: Record<string, string>;
  stopTimeoutSec: number;
}

/**
 * Never overwrite an earlier safety copy: after a failed run the target holds a half-restored tree, and
 * running the script again must not replace the copy of the real previous contents with it.
 */
const SAFETY_FRESH =
  '  if [ -e "$SAFETY" ]; then SAFETY="${SAFETY%.tar}-$(date -u +%Y%m%dT%H%M%SZ)-$$.tar"; fi';

const TAR_FLAGS = "--numeric-owner --xattrs --xattrs-include='*' --acls";

function words(argv: string[]): string {
  return argv.map(shq).join(' ');
}

/**
 * Text for a `#` comment: a bind path may contain a newline, which would end the comment and make the
 * rest of the name a command. Control characters are shown as JSON escapes instead.
 */
function commentText(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
}

export function renderRestoreScript(x: ScriptInput): string {
  const L: string[] = [];
  const what = x.kind === 'volume' ? `volume ${x.name}` : `bind mount ${x.name}`;
  L.push('#!/usr/bin/env bash');
  L.push(
    `# kopi-docka restore script: ${commentText(what)} of unit ${commentText(x.unit)}, backup ${commentText(x.backupId)}.`,
  );
  L.push('#');
  L.push('# What it does, in order:');
  L.push(
    '#   1. stops the running containers that use the data (and starts them again at the end, even on failure);',
  );
  L.push('#   2. if the target is not empty, writes a safety copy of it (a tar) to SAFETY;');
  L.push(
    `#   3. empties the target and restores snapshot ${commentText(x.snapshotId)} (${x.format === 'tar' ? 'tar stream' : 'directory'}) into it,`,
  );
  L.push('#      with owners, modes and times;');
  if (x.format === 'dir')
    L.push('#   4. re-applies extended attributes, ACLs and hard links recorded at backup time.');
  L.push(
    '# To undo: stop the containers, empty the target, and `tar -xpf "$SAFETY" --numeric-owner --xattrs --acls -C <target>`.',
  );
  L.push('set -euo pipefail');
  L.push('');
  L.push(`UNIT=${shq(x.unit)}`);
  if (x.kind === 'volume') L.push(`VOLUME=${shq(x.name)}`);
  else L.push(`TARGET=${shq(x.target)}`);
  L.push(`SNAPSHOT=${shq(x.snapshotId)}`);
  L.push(`SAFETY=${shq(x.safetyFile)}`);
  if (x.sidecarDir) L.push(`SIDECAR=${shq(x.sidecarDir)}`);
  L.push(`CONTAINERS=(${x.containers.map(shq).join(' ')})`);
  for (const [k, v] of Object.entries(x.kopiaEnv)) L.push(`export ${k}=${shq(v)}`);
  L.push('if [ -z "${KOPIA_PASSWORD:-}" ]; then');
  if (x.passwordFile) {
    L.push(`  KOPIA_PASSWORD="$(cat ${shq(x.passwordFile)})"`);
    L.push('  export KOPIA_PASSWORD');
  } else {
    L.push('  echo "set KOPIA_PASSWORD to the repository password and run again" >&2');
    L.push('  exit 2');
  }
  L.push('fi');
  L.push('');
  if (x.kind === 'volume') {
    L.push('if ! docker volume inspect "$VOLUME" >/dev/null 2>&1; then');
    const labels = Object.entries(x.volumeLabels).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
    L.push(`  docker volume create ${words(labels)} "$VOLUME" >/dev/null`);
    L.push('  echo "created volume $VOLUME"');
    L.push('fi');
    L.push(`TARGET="$(docker volume inspect --format '{{.Mountpoint}}' "$VOLUME")"`);
  }
  L.push('');
  L.push('STOPPED=()');
  // Set once this run wrote its copy: an older copy from an earlier run must not be offered as
  // "the previous contents" when this run failed before touching the target.
  L.push('SAFETY_MADE=0');
  L.push('finish() {');
  L.push('  local rc=$?');
  L.push('  for c in "${STOPPED[@]+"${STOPPED[@]}"}"; do');
  L.push('    docker start "$c" >/dev/null && echo "started $c" || echo "could not start $c" >&2');
  L.push('  done');
  L.push('  if [ "$rc" -ne 0 ]; then');
  L.push('    echo "restore of $TARGET FAILED (exit $rc)." >&2');
  L.push('    if [ "$SAFETY_MADE" = 1 ]; then');
  L.push('      echo "The previous contents are safe in $SAFETY; to put them back:" >&2');
  // printf %q: the printed command is safe to paste even when a path holds quotes or `$(…)`.
  const dest = x.isFile ? '"$(dirname "$TARGET")"' : '"$TARGET"';
  const empty = x.isFile ? 'rm -f --' : 'find';
  const emptyTail = x.isFile ? '' : ' -mindepth 1 -delete';
  L.push(
    `      printf '  ${empty} %q${emptyTail} && tar -xpf %q %s -C %q\\n' "$TARGET" "$SAFETY" "${TAR_FLAGS}" ${dest} >&2`,
  );
  L.push('    fi');
  L.push('  fi');
  L.push('  exit "$rc"');
  L.push('}');
  L.push('trap finish EXIT');
  L.push('');
  L.push('# Everything running that uses the data: the containers recorded at backup time, plus any other');
  L.push(`# container mounting the ${x.kind === 'volume' ? 'volume' : 'directory (or file)'} now.`);
  L.push('USING=("${CONTAINERS[@]+"${CONTAINERS[@]}"}")');
  if (x.kind === 'volume') {
    L.push(
      'while IFS= read -r c; do [ -n "$c" ] && USING+=("$c"); done < <(docker ps --filter "volume=$VOLUME" --format "{{.Names}}")',
    );
  } else {
    // `docker ps --filter volume=` matches a bind by its destination, not its host path: compare the
    // Source of every running container's mounts instead (the path goes through the environment, so
    // awk never interprets it).
    L.push('while IFS= read -r c; do [ -n "$c" ] && USING+=("$c"); done < <(');
    L.push(
      '  docker ps -q | xargs -r docker inspect --format \'{{.Name}}{{range .Mounts}}{{"\\t"}}{{.Source}}{{end}}\' |',
    );
    L.push(
      '    T="$TARGET" awk -F \'\\t\' \'{ for (i = 2; i <= NF; i++) if ($i == ENVIRON["T"]) { sub(/^\\//, "", $1); print $1 } }\'',
    );
    L.push(')');
  }
  // `restore --execute` stops a unit's users once for all its sources and sets this; the script then
  // only makes sure nothing still runs on the data (something started meanwhile is an error, not a race).
  L.push('for c in "${USING[@]+"${USING[@]}"}"; do');
  L.push('  if [ "$(docker inspect --format "{{.State.Running}}" "$c" 2>/dev/null)" = "true" ]; then');
  L.push('    case " ${STOPPED[*]+"${STOPPED[*]}"} " in *" $c "*) continue ;; esac');
  L.push('    if [ "${KOPI_DOCKA_USERS_STOPPED:-}" = 1 ]; then');
  L.push('      echo "$c is running and uses the data although it was stopped for this restore" >&2');
  L.push('      exit 3');
  L.push('    fi');
  L.push(`    docker stop -t ${x.stopTimeoutSec} "$c" >/dev/null`);
  L.push('    STOPPED+=("$c")');
  L.push('    echo "stopped $c"');
  L.push('  fi');
  L.push('done');
  L.push('');
  if (x.isFile) {
    L.push('mkdir -p "$(dirname "$TARGET")"');
    L.push('if [ -e "$TARGET" ]; then');
    L.push(SAFETY_FRESH);
    L.push('  mkdir -p "$(dirname "$SAFETY")"');
    L.push(`  tar -cf "$SAFETY" --sparse ${TAR_FLAGS} -C "$(dirname "$TARGET")" -- "$(basename "$TARGET")"`);
    L.push('  SAFETY_MADE=1');
    L.push('  echo "safety copy: $SAFETY"');
    L.push('  rm -f -- "$TARGET"');
    L.push('fi');
  } else {
    L.push('mkdir -p "$TARGET"');
    L.push('if [ -n "$(ls -A "$TARGET")" ]; then');
    L.push(SAFETY_FRESH);
    L.push('  mkdir -p "$(dirname "$SAFETY")"');
    L.push(`  tar -cf "$SAFETY" --sparse ${TAR_FLAGS} -C "$TARGET" .`);
    L.push('  SAFETY_MADE=1');
    L.push('  echo "safety copy: $SAFETY"');
    L.push('  find "$TARGET" -mindepth 1 -delete');
    L.push('fi');
  }
  L.push('');
  if (x.format === 'dir') {
    L.push(
      `${words(x.kopiaRestore('__SNAPSHOT__', '__TARGET__')).replace(shq('__SNAPSHOT__'), '"$SNAPSHOT"').replace(shq('__TARGET__'), '"$TARGET"')}`,
    );
    if (x.sidecarDir && !x.isFile) {
      // Applied whenever the dump has content, not only when the backup judged it complete: getfattr
      // exits 1 on the first entry it cannot read (a dangling symlink, when run without -h) yet still
      // dumps every other entry, and those attributes are worth having back. A failure here (e.g.
      // user.* xattrs recorded for a symlink, which Linux refuses) is a warning, not a failed restore:
      // the data is back by now, and aborting would leave the user with a half-finished restore.
      if (!x.hasXattrs || !x.hasAcls) {
        L.push('# The backup did not report a complete xattr/ACL dump: whatever it recorded is re-applied.');
      }
      L.push('if [ -s "$SIDECAR/xattrs.txt" ]; then');
      L.push('  if ! (cd "$TARGET" && setfattr -h --restore="$SIDECAR/xattrs.txt"); then');
      L.push('    echo "warning: some extended attributes could not be re-applied (see above)" >&2');
      L.push('  fi');
      L.push('fi');
      L.push('if [ -s "$SIDECAR/acls.txt" ]; then');
      L.push('  if ! (cd "$TARGET" && setfacl --restore="$SIDECAR/acls.txt"); then');
      L.push('    echo "warning: some ACLs could not be re-applied (see above)" >&2');
      L.push('  fi');
      L.push('fi');
      const groups = x.hardLinks.filter((g) => g.length > 1);
      if (groups.length > 0) {
        // Names the snapshot does not have (excluded by an ignore policy after the sidecar listed
        // them) are skipped, not an error. `ln -f` replaces a directory entry, which sets the
        // directory's mtime to now: the times Kopia restored are kept in a reference file and put back.
        L.push('# Hard links: Kopia restored each name as its own file; make each group one inode again.');
        L.push('relink_group() {');
        L.push('  local anchor="" n dir ref');
        L.push('  for n in "$@"; do');
        L.push('    [ -f "$TARGET/$n" ] || continue');
        L.push('    if [ -z "$anchor" ]; then anchor="$n"; continue; fi');
        L.push('    dir="$(dirname -- "$TARGET/$n")"');
        L.push('    ref="$(mktemp)"');
        L.push('    touch -r "$dir" -- "$ref"');
        L.push('    ln -f -- "$TARGET/$anchor" "$TARGET/$n"');
        L.push('    touch -r "$ref" -- "$dir"');
        L.push('    rm -f -- "$ref"');
        L.push('  done');
        L.push('}');
        for (const g of groups) L.push(`relink_group ${g.map(shq).join(' ')}`);
      }
    }
  } else {
    const show = words(x.kopiaShow('__OBJECT__')).replace(shq('__OBJECT__'), shq(x.streamObject ?? ''));
    const dest = x.isFile ? '"$(dirname "$TARGET")"' : '"$TARGET"';
    L.push(`${show} | tar -xpf - ${TAR_FLAGS} -C ${dest}`);
  }
  L.push('echo "restored $TARGET from snapshot $SNAPSHOT"');
  L.push('');
  return `${L.join('\n')}\n`;
}

/**
 * The shell command that puts a safety copy (a tar written by a restore script) back in place of what
 * the restore wrote; to be run with the data's containers stopped. A volume's target is looked up at
 * run time: its mountpoint may differ by then.
 */
export function putBackCommand(
  d: { type: 'volume' | 'bind'; name: string; isFile: boolean; target: string },
  copy: string,
): string {
  const flags = "--numeric-owner --xattrs --xattrs-include='*' --acls";
  const target =
    d.type === 'volume'
      ? `"$(docker volume inspect --format '{{.Mountpoint}}' ${shq(d.name)})"`
      : shq(d.target);
  if (d.isFile) {
    return `rm -f -- ${target} && tar -xpf ${shq(copy)} ${flags} -C ${shq(dirname(d.target))}`;
  }
  return `find ${target} -mindepth 1 -delete && tar -xpf ${shq(copy)} ${flags} -C ${target}`;
}
