/**
 * The safe restore script for one volume or bind mount: a bash file a person can read and run, and the
 * very same file `restore --execute` runs. It stops the containers using the data, keeps a safety copy
 * of what is there, streams the snapshot back (direct or tar), re-applies what Kopia does not keep
 * (xattrs, ACLs, hard links from the sidecar) and starts again what it stopped — also on failure.
 */

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

const TAR_FLAGS = "--numeric-owner --xattrs --xattrs-include='*' --acls";

function words(argv: string[]): string {
  return argv.map(shq).join(' ');
}

export function renderRestoreScript(x: ScriptInput): string {
  const L: string[] = [];
  const what = x.kind === 'volume' ? `volume ${x.name}` : `bind mount ${x.name}`;
  L.push('#!/usr/bin/env bash');
  L.push(`# kopi-docka restore script: ${what} of unit ${x.unit}, backup ${x.backupId}.`);
  L.push('#');
  L.push('# What it does, in order:');
  L.push(
    '#   1. stops the running containers that use the data (and starts them again at the end, even on failure);',
  );
  L.push('#   2. if the target is not empty, writes a safety copy of it (a tar) to SAFETY;');
  L.push(
    `#   3. empties the target and restores snapshot ${x.snapshotId} (${x.format === 'tar' ? 'tar stream' : 'directory'}) into it,`,
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
  L.push('finish() {');
  L.push('  local rc=$?');
  L.push('  for c in "${STOPPED[@]+"${STOPPED[@]}"}"; do');
  L.push('    docker start "$c" >/dev/null && echo "started $c" || echo "could not start $c" >&2');
  L.push('  done');
  L.push('  if [ "$rc" -ne 0 ]; then');
  L.push('    echo "restore of $TARGET FAILED (exit $rc)." >&2');
  L.push('    if [ -f "$SAFETY" ]; then');
  L.push('      echo "The previous contents are safe in $SAFETY; to put them back:" >&2');
  L.push(
    `      echo "  find \\"$TARGET\\" -mindepth 1 -delete && tar -xpf \\"$SAFETY\\" ${TAR_FLAGS.replace(/'/g, '')} -C \\"$TARGET\\"" >&2`,
  );
  L.push('    fi');
  L.push('  fi');
  L.push('  exit "$rc"');
  L.push('}');
  L.push('trap finish EXIT');
  L.push('');
  L.push('# Everything running that uses the data: the containers recorded at backup time, plus any other');
  L.push('# container mounting the volume now.');
  L.push('USING=("${CONTAINERS[@]+"${CONTAINERS[@]}"}")');
  if (x.kind === 'volume') {
    L.push(
      'while IFS= read -r c; do [ -n "$c" ] && USING+=("$c"); done < <(docker ps --filter "volume=$VOLUME" --format "{{.Names}}")',
    );
  }
  L.push('for c in "${USING[@]+"${USING[@]}"}"; do');
  L.push('  if [ "$(docker inspect --format "{{.State.Running}}" "$c" 2>/dev/null)" = "true" ]; then');
  L.push('    case " ${STOPPED[*]+"${STOPPED[*]}"} " in *" $c "*) continue ;; esac');
  L.push(`    docker stop -t ${x.stopTimeoutSec} "$c" >/dev/null`);
  L.push('    STOPPED+=("$c")');
  L.push('    echo "stopped $c"');
  L.push('  fi');
  L.push('done');
  L.push('');
  if (x.isFile) {
    L.push('mkdir -p "$(dirname "$TARGET")"');
    L.push('if [ -e "$TARGET" ]; then');
    L.push('  mkdir -p "$(dirname "$SAFETY")"');
    L.push(`  tar -cf "$SAFETY" ${TAR_FLAGS} -C "$(dirname "$TARGET")" -- "$(basename "$TARGET")"`);
    L.push('  echo "safety copy: $SAFETY"');
    L.push('  rm -f -- "$TARGET"');
    L.push('fi');
  } else {
    L.push('mkdir -p "$TARGET"');
    L.push('if [ -n "$(ls -A "$TARGET")" ]; then');
    L.push('  mkdir -p "$(dirname "$SAFETY")"');
    L.push(`  tar -cf "$SAFETY" ${TAR_FLAGS} -C "$TARGET" .`);
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
      if (x.hasXattrs) {
        L.push(
          'if [ -s "$SIDECAR/xattrs.txt" ]; then (cd "$TARGET" && setfattr -h --restore="$SIDECAR/xattrs.txt"); fi',
        );
      }
      if (x.hasAcls) {
        L.push(
          'if [ -s "$SIDECAR/acls.txt" ]; then (cd "$TARGET" && setfacl --restore="$SIDECAR/acls.txt"); fi',
        );
      }
      for (const group of x.hardLinks) {
        const [first, ...rest] = group;
        if (first === undefined) continue;
        for (const other of rest) L.push(`ln -f -- "$TARGET"/${shq(first)} "$TARGET"/${shq(other)}`);
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
