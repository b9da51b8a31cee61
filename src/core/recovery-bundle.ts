/**
 * The disaster-recovery bundle, PURE parts: file names, the `kopia-repository.json` shape, the
 * `recover.sh` and README texts, the integrity record, and which old bundles rotation removes.
 * Writing, encrypting and rotating on disk is src/pipeline/recovery-bundle.ts.
 *
 * A bundle is a set of files sharing one stem `kopi-docka-recovery-<backup-id-style UTC stamp>`:
 *
 * | file                 | what                                                                       | secret |
 * |----------------------|----------------------------------------------------------------------------|--------|
 * | `<stem>.tar.enc`     | `openssl enc -aes-256-cbc -pbkdf2 -iter 600000 -md sha256 -salt` over a tar | no (encrypted) |
 * | `<stem>.PASSWORD`    | the random passphrase (one line, ≥ 256 bits), mode 0600 from creation      | YES: move it off the host |
 * | `<stem>.README`      | how to decrypt with openssl alone, and what next                          | no |
 * | `<stem>.HMAC`        | HMAC-SHA256 of `<stem>.tar.enc` keyed by the passphrase (CBC has no MAC), and a passphrase check value | no |
 *
 * The tar holds one directory `<stem>/` with: kopia-repository.json, kopia-password.txt,
 * kopi-docka.conf, recover.sh, backup-status.json, known_hosts (SFTP only) and SHA256SUMS (a
 * `sha256sum -c` list of all the others, checked before anything is extracted).
 */
import { createHash, createHmac } from 'node:crypto';
import {
  credentialRequirements,
  describeBackend,
  repositoryArgs,
  type BackendSecrets,
  type RepositoryBackend,
} from './repository-backend.js';

export const BUNDLE_PREFIX = 'kopi-docka-recovery-';
/** PBKDF2-HMAC-SHA256 iterations for `openssl enc` (OWASP 2023 guidance for PBKDF2-SHA256). */
export const KDF_ITERATIONS = 600_000;
/** The openssl options both sides use, in order (decrypt adds `-d`). */
export const OPENSSL_CIPHER_ARGS: readonly string[] = [
  '-aes-256-cbc',
  '-pbkdf2',
  '-iter',
  String(KDF_ITERATIONS),
  '-md',
  'sha256',
  '-salt',
];
export const BUNDLE_SUFFIXES = ['.tar.enc', '.PASSWORD', '.README', '.HMAC'] as const;
export const REPOSITORY_JSON_FORMAT = 'kopi-docka-repository/1';

const STAMP_RE =
  /^kopi-docka-recovery-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z)(\.tar\.enc|\.PASSWORD|\.README|\.HMAC)$/;

/** `2025-01-31T23-59-59Z` for `d` (UTC, second precision; no ':' so it is file-name safe). */
export function bundleStamp(d: Date): string {
  return d
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/:/g, '-');
}

/** `kopi-docka-recovery-<stamp>` — the stem of every file of the bundle and the tar's top directory. */
export function bundleStem(d: Date): string {
  return `${BUNDLE_PREFIX}${bundleStamp(d)}`;
}

/** The stamp and suffix of a bundle file name, or undefined for any other name. */
export function parseBundleFileName(name: string): { stamp: string; suffix: string } | undefined {
  const m = STAMP_RE.exec(name);
  return m?.[1] && m[2] ? { stamp: m[1], suffix: m[2] } : undefined;
}

/**
 * Rotation: of the file names in a bundle directory, those to delete so that only the newest
 * `retention` bundles (by stamp; a bundle = its `.tar.enc`) remain — every file of an older bundle,
 * and the leftovers (`.PASSWORD`/`.README`/`.HMAC`) of a bundle whose `.tar.enc` is gone and that is
 * not among the kept. Other names are never touched.
 *
 * @param retention ≥ 1 (a smaller value is treated as 1: the bundle just written always stays).
 */
export function bundleFilesToRemove(names: readonly string[], retention: number): string[] {
  const keep = Math.max(1, Math.floor(retention));
  const stamps = [
    ...new Set(names.map(parseBundleFileName).flatMap((p) => (p?.suffix === '.tar.enc' ? [p.stamp] : []))),
  ].sort();
  const kept = new Set(stamps.slice(-keep));
  return names
    .filter((n) => {
      const p = parseBundleFileName(n);
      return p !== undefined && !kept.has(p.stamp);
    })
    .sort();
}

// ---------------------------------------------------------------------------------------------------
// kopia-repository.json

/** Kopia connection identity kopi-docka uses on this host (from its config / Kopia adapter). */
export interface KopiaIdentity {
  /** Absolute path of kopi-docka's own Kopia config file. */
  configFile: string;
  /** Absolute Kopia cache directory; Kopia's default when absent. */
  cacheDirectory?: string;
  /** `--override-hostname` / `--override-username`: the `user@host` of every snapshot. */
  hostname: string;
  username: string;
}

/** The shape of `kopia-repository.json` in the bundle. Holds no secret. */
export interface RepositoryRecoveryInfo {
  format: typeof REPOSITORY_JSON_FORMAT;
  /** ISO 8601 UTC. */
  createdAt: string;
  /** One line, as `describeBackend` prints it. */
  description: string;
  /** Every non-secret parameter of the backend, in kopi-docka's typed form. */
  backend: RepositoryBackend;
  /** `kopia repository connect <connectArgv…>` reaches the repository (credentials aside). */
  connectArgv: string[];
  kopia: KopiaIdentity;
  /** Credential environment variables the backend needs on the new host (names only). */
  credentials: {
    required: string[];
    oneOf: string[][];
    optional: string[];
    /** The ones this host used when the bundle was written. */
    usedOnThisHost: string[];
  };
  /** From `kopia repository status --json` when given: identifies the exact repository. */
  repository?: { uniqueIDHex?: string; storageType?: string; hash?: string; encryption?: string };
  /** Where kopi-docka's config and (when the config names one) the password file go back. */
  kopiDocka: { configPath: string; passwordFile?: string };
  /** SFTP only: the bundle's `known_hosts` goes to `backend.knownHostsFile`; the key is NOT bundled. */
  sftp?: { knownHostsInBundle: boolean; keyFileBundled: false };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Only the identifying, non-secret fields of `kopia repository status --json`. */
function repositoryFromStatus(status: unknown): RepositoryRecoveryInfo['repository'] {
  if (!isRecord(status)) return undefined;
  const out: NonNullable<RepositoryRecoveryInfo['repository']> = {};
  if (typeof status.uniqueIDHex === 'string') out.uniqueIDHex = status.uniqueIDHex;
  if (isRecord(status.storage) && typeof status.storage.type === 'string')
    out.storageType = status.storage.type;
  if (isRecord(status.contentFormat)) {
    if (typeof status.contentFormat.hash === 'string') out.hash = status.contentFormat.hash;
    if (typeof status.contentFormat.encryption === 'string') out.encryption = status.contentFormat.encryption;
  }
  return Object.keys(out).length ? out : undefined;
}

export interface RepositoryRecoveryInput {
  backend: RepositoryBackend;
  /** Only to record which credential variable names this host uses; values are never stored. */
  secrets?: BackendSecrets;
  kopia: KopiaIdentity;
  configPath: string;
  passwordFile?: string;
  /** `kopia repository status --json` output (parsed), optional. */
  repositoryStatus?: unknown;
  now: Date;
}

/**
 * Build `kopia-repository.json`.
 * @throws BackendConfigError when the backend is invalid (`repositoryArgs`' checks, credentials aside).
 */
export function repositoryRecoveryInfo(input: RepositoryRecoveryInput): RepositoryRecoveryInfo {
  const { backend } = input;
  // Credentials are not ours to check here: validate the parameters with placeholders.
  const placeholders: BackendSecrets = {
    s3AccessKeyId: 'x',
    s3SecretAccessKey: 'x',
    b2KeyId: 'x',
    b2Key: 'x',
    azureStorageKey: 'x',
  };
  const { argv } = repositoryArgs(backend, placeholders);
  const req = credentialRequirements(backend.kind);
  let used: string[] = [];
  if (input.secrets) {
    try {
      used = Object.keys(repositoryArgs(backend, input.secrets).env).sort();
    } catch {
      used = [];
    }
  }
  const info: RepositoryRecoveryInfo = {
    format: REPOSITORY_JSON_FORMAT,
    createdAt: input.now.toISOString(),
    description: describeBackend(backend),
    backend,
    connectArgv: argv,
    kopia: { ...input.kopia },
    credentials: { ...req, usedOnThisHost: used },
    kopiDocka: {
      configPath: input.configPath,
      ...(input.passwordFile === undefined ? {} : { passwordFile: input.passwordFile }),
    },
  };
  const repo = repositoryFromStatus(input.repositoryStatus);
  if (repo) info.repository = repo;
  if (backend.kind === 'sftp') info.sftp = { knownHostsInBundle: true, keyFileBundled: false };
  return info;
}

// ---------------------------------------------------------------------------------------------------
// recover.sh

/** One POSIX-shell word: single-quoted, `'` as `'\''`. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * `recover.sh` for `info`: bash, `set -euo pipefail`, idempotent (a second run finds everything in
 * place and only reconnects), asks before overwriting a file that differs (`--yes` answers yes;
 * without a terminal and without `--yes` it stops instead), never prints the password.
 *
 * Steps: check kopia and kopi-docka are installed → put kopi-docka.conf at its path (0600) → the
 * password file when the config names one (0600) → SFTP: known_hosts in place, the private key
 * present → the credential variables set → `kopia repository connect <backend argv>
 * --config-file … --override-hostname … --override-username … [--cache-directory …]
 * --no-check-for-updates --no-persist-credentials` with the password in KOPIA_PASSWORD → `kopi-docka
 * --config <path> restore --list`.
 */
export function renderRecoverScript(info: RepositoryRecoveryInfo): string {
  const q = shellQuote;
  const b = info.backend;
  const connect = [
    ...info.connectArgv.map(q),
    q(`--config-file=${info.kopia.configFile}`),
    q(`--override-hostname=${info.kopia.hostname}`),
    q(`--override-username=${info.kopia.username}`),
    ...(info.kopia.cacheDirectory ? [q(`--cache-directory=${info.kopia.cacheDirectory}`)] : []),
    '--no-check-for-updates',
    '--no-persist-credentials',
  ];
  const lines: string[] = [
    '#!/usr/bin/env bash',
    `# kopi-docka recovery script, written ${info.createdAt} for: ${info.description}`,
    '#',
    '# Run it on the new host, from the directory the bundle was extracted to, once Docker, Kopia and',
    '# kopi-docka are installed:   sudo bash recover.sh [--yes]',
    '# It puts the kopi-docka config (and password file) back, connects Kopia to the repository with',
    '# every parameter it needs, and lists the restore points. Running it again is harmless: files',
    '# already in place are left alone, one that differs is only replaced after you say so (--yes: always).',
    'set -euo pipefail',
    '',
    'HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
    'ASSUME_YES=0',
    'case "${1:-}" in',
    '  --yes | -y) ASSUME_YES=1 ;;',
    '  "") ;;',
    '  *) printf "usage: %s [--yes]\\n" "$0" >&2; exit 2 ;;',
    'esac',
    '',
    'say() { printf "[recover] %s\\n" "$*"; }',
    'die() { printf "[recover] ERROR: %s\\n" "$*" >&2; exit 1; }',
    '',
    '# confirm QUESTION: yes with --yes; otherwise ask on the terminal; no terminal means no.',
    'confirm() {',
    '  if [ "$ASSUME_YES" = 1 ]; then return 0; fi',
    '  if ! { : </dev/tty; } 2>/dev/null; then return 1; fi',
    '  local ans',
    '  read -r -p "$1 [y/N] " ans </dev/tty || return 1',
    '  case "$ans" in y | Y | yes | YES) return 0 ;; *) return 1 ;; esac',
    '}',
    '',
    "# install_file SRC DEST: DEST gets SRC's content with mode 0600. Identical: nothing to do.",
    '# Different: asks; the old file is kept as DEST.before-recover-<time>.',
    'install_file() {',
    '  local src="$1" dest="$2"',
    '  if [ -e "$dest" ] && cmp -s "$src" "$dest"; then',
    '    say "$dest is already in place"',
    '    return 0',
    '  fi',
    '  if [ -e "$dest" ]; then',
    '    confirm "$dest exists and differs from the bundle. Replace it (the old one is kept aside)?" ||',
    '      die "left $dest as it is; re-run with --yes to replace it, or fix it by hand"',
    '    cp -p "$dest" "$dest.before-recover-$(date -u +%Y%m%dT%H%M%SZ)"',
    '  fi',
    '  mkdir -p "$(dirname "$dest")"',
    '  (umask 077 && cp "$src" "$dest.recover-tmp")',
    '  chmod 0600 "$dest.recover-tmp"',
    '  mv -f "$dest.recover-tmp" "$dest"',
    '  say "installed $dest"',
    '}',
    '',
    'for f in kopia-repository.json kopia-password.txt kopi-docka.conf; do',
    '  [ -f "$HERE/$f" ] || die "$HERE/$f is missing: run recover.sh from the extracted bundle directory"',
    'done',
    'if [ -f "$HERE/SHA256SUMS" ] && command -v sha256sum >/dev/null 2>&1; then',
    '  (cd "$HERE" && sha256sum --quiet -c SHA256SUMS) || die "the bundle files do not match SHA256SUMS"',
    'fi',
    '',
    'command -v kopia >/dev/null 2>&1 || die "kopia is not installed (https://kopia.io/docs/installation/)"',
    'command -v kopi-docka >/dev/null 2>&1 || die "kopi-docka is not installed"',
    '',
    `CONFIG_PATH=${q(info.kopiDocka.configPath)}`,
    `KOPIA_CONFIG_FILE=${q(info.kopia.configFile)}`,
    '',
    'say "1. kopi-docka config"',
    'install_file "$HERE/kopi-docka.conf" "$CONFIG_PATH"',
  ];
  if (info.kopiDocka.passwordFile) {
    lines.push(
      '',
      'say "2. repository password file named by the config"',
      `install_file "$HERE/kopia-password.txt" ${q(info.kopiDocka.passwordFile)}`,
    );
  } else {
    lines.push('', 'say "2. the config names no password file: nothing to put back"');
  }
  if (b.kind === 'sftp') {
    lines.push(
      '',
      'say "3. SFTP: known_hosts and private key"',
      '[ -f "$HERE/known_hosts" ] || die "known_hosts is missing from the bundle"',
      `install_file "$HERE/known_hosts" ${q(b.knownHostsFile)}`,
      `[ -f ${q(b.keyFile)} ] || die ${q(
        `the SSH private key ${b.keyFile} is not on this host (it is never put in the bundle): copy it there (mode 0600) and re-run`,
      )}`,
    );
  } else {
    lines.push('', 'say "3. no files needed for this backend"');
  }
  const req = info.credentials;
  lines.push('', 'say "4. credentials from the environment"');
  for (const name of req.required) {
    lines.push(
      `[ -n "\${${name}:-}" ] || die ${q(`export ${name} before running recover.sh (needed by the ${b.kind} backend)`)}`,
    );
  }
  if (req.oneOf.length) {
    const tests = req.oneOf.map((group) => group.map((n) => `[ -n "\${${n}:-}" ]`).join(' && '));
    lines.push(
      `if ! { ${tests.map((t) => `{ ${t}; }`).join(' || ')}; }; then`,
      `  die ${q(`export one of: ${req.oneOf.map((g) => g.join(' + ')).join(', or ')} (needed by the ${b.kind} backend)`)}`,
      'fi',
    );
  }
  if (req.optional.length) {
    lines.push(`# Optional: ${req.optional.join(', ')}`);
  }
  lines.push(
    '',
    'say "5. connecting Kopia to the repository"',
    'KOPIA_PASSWORD="$(head -n 1 "$HERE/kopia-password.txt")"',
    'export KOPIA_PASSWORD',
    'export KOPIA_CHECK_FOR_UPDATES=false',
    'mkdir -p "$(dirname "$KOPIA_CONFIG_FILE")"',
    `kopia repository connect \\\n  ${connect.join(' \\\n  ')} </dev/null ||`,
    `  die ${q(`kopia could not connect to ${info.description} (see its message above)`)}`,
    'say "connected: $(kopia repository status --config-file="$KOPIA_CONFIG_FILE" </dev/null 2>/dev/null | grep -m1 "^Storage type" || true)"',
    'unset KOPIA_PASSWORD',
    '',
    'say "6. restore points in the repository"',
    'kopi-docka --config "$CONFIG_PATH" restore --list',
    '',
    'say "done. Restore a unit with: kopi-docka --config \\"$CONFIG_PATH\\" restore --unit UNIT --backup-id latest --execute --yes"',
    '',
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------
// README

/** The argv (no shell) that decrypts `<stem>.tar.enc` into `<stem>.tar` with the passphrase from a file. */
export function opensslDecryptArgv(stem: string, passwordFile = `${stem}.PASSWORD`): string[] {
  return [
    'openssl',
    'enc',
    '-d',
    ...OPENSSL_CIPHER_ARGS,
    '-in',
    `${stem}.tar.enc`,
    '-out',
    `${stem}.tar`,
    '-pass',
    `file:${passwordFile}`,
  ];
}

/** `<stem>.README`: exact commands to decrypt with standard tools, and the next steps. */
export function renderReadme(stem: string, info: RepositoryRecoveryInfo): string {
  const decrypt = opensslDecryptArgv(stem).join(' ');
  const creds = info.credentials;
  const credLines = [
    ...creds.required.map((n) => `   export ${n}=…`),
    ...(creds.oneOf.length
      ? [`   export one of: ${creds.oneOf.map((g) => g.join(' + ')).join(', or ')}`]
      : []),
    ...creds.optional.map((n) => `   (optional) export ${n}=…`),
  ];
  return [
    `kopi-docka disaster-recovery bundle ${stem}`,
    `written ${info.createdAt} for the repository: ${info.description}`,
    '',
    'FIRST: MOVE THE PASSWORD FILE OFF THIS HOST',
    `  ${stem}.PASSWORD holds the only key to this bundle. Kept next to the bundle it protects`,
    '  nothing: copy it to a password manager or another machine, then delete it here',
    `  (shred -u ${stem}.PASSWORD). Keep the bundle itself wherever is convenient (it is encrypted).`,
    '',
    'Files',
    `  ${stem}.tar.enc`,
    '      the bundle: a tar encrypted with openssl enc (AES-256-CBC; key from the passphrase by',
    `      PBKDF2-HMAC-SHA256, ${KDF_ITERATIONS} iterations, random salt)`,
    `  ${stem}.PASSWORD`,
    '      the passphrase (first line): 256 random bits',
    `  ${stem}.HMAC`,
    '      HMAC-SHA256 of the .tar.enc keyed by the passphrase (AES-CBC alone cannot detect tampering)',
    `  ${stem}.README`,
    '      this file',
    '',
    'Decrypt (any machine with OpenSSL 1.1.1 or newer and tar):',
    `  ${decrypt} \\`,
    `    && tar -xf ${stem}.tar && rm ${stem}.tar`,
    '  A wrong passphrase makes openssl print "bad decrypt" and exit non-zero; the && then keeps tar from',
    '  running. (Piping openssl straight into tar would extract whatever garbage came out before the',
    '  error: always decrypt to a file first.) AES-CBC itself does not detect tampering; check the',
    '  checksums next:',
    `    cd ${stem} && sha256sum -c SHA256SUMS`,
    '  (kopi-docka also checks the .HMAC before it extracts a bundle.)',
    '',
    `Inside ${stem}/`,
    '  kopia-repository.json  where the repository is, every parameter needed to reconnect (no secrets)',
    '  kopia-password.txt     the repository password',
    '  kopi-docka.conf        the kopi-docka config of the lost host',
    '  backup-status.json     units and their newest complete restore points when the bundle was made',
    ...(info.backend.kind === 'sftp'
      ? ["  known_hosts            the SFTP server's host key (the private key is NOT in the bundle)"]
      : []),
    '  recover.sh             puts the config back, connects Kopia, lists the restore points',
    '  SHA256SUMS             checksums of the files above',
    '',
    'On the new host (Docker, Kopia and kopi-docka installed):',
    ...(credLines.length
      ? ['  1. export the repository credentials:', ...credLines]
      : ['  1. (no credentials to export for this backend)']),
    ...(info.backend.kind === 'sftp'
      ? [`     and copy the SSH private key to ${info.backend.keyFile} (mode 0600)`]
      : []),
    `  2. cd ${stem} && sudo -E bash recover.sh        (asks before replacing anything; --yes to not ask)`,
    '  3. kopi-docka restore --unit UNIT --backup-id latest --execute --yes     for each unit',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------
// Integrity

/** HMAC key for a bundle: SHA-256 over a domain label and the passphrase (itself ≥ 256 random bits). */
function macKey(passphrase: string): Buffer {
  return createHash('sha256').update('kopi-docka recovery bundle HMAC v1\0').update(passphrase).digest();
}

/** Hex HMAC-SHA256 of the encrypted bundle bytes, keyed by the passphrase. */
export function bundleHmac(ciphertext: Buffer, passphrase: string): string {
  return createHmac('sha256', macKey(passphrase)).update(ciphertext).digest('hex');
}

/**
 * A value that tells whether a passphrase is the bundle's without decrypting: HMAC-SHA256 of a fixed
 * label under the passphrase's MAC key. With a 256-bit random passphrase it reveals nothing usable.
 */
export function passphraseCheck(passphrase: string): string {
  return createHmac('sha256', macKey(passphrase)).update('passphrase check').digest('hex');
}

/**
 * The `.HMAC` file text, two lines:
 * `hmac-sha256 <hex>  <bundle file name>` and `passphrase-check <hex>`.
 */
export function renderHmacFile(hex: string, bundleFileName: string, check: string): string {
  return `hmac-sha256 ${hex}  ${bundleFileName}\npassphrase-check ${check}\n`;
}

/** The HMAC and passphrase check from a `.HMAC` file's text, or undefined when it is not one. */
export function parseHmacFile(text: string): { hmac: string; passphraseCheck: string } | undefined {
  const m = /^hmac-sha256 ([0-9a-f]{64}) {2}\S+\npassphrase-check ([0-9a-f]{64})\n?$/.exec(text);
  return m?.[1] && m[2] ? { hmac: m[1], passphraseCheck: m[2] } : undefined;
}

/** `sha256sum` format for name → content pairs, sorted by name. */
export function renderSha256Sums(files: ReadonlyMap<string, Buffer | string>): string {
  return [...files.keys()]
    .sort()
    .map(
      (n) =>
        `${createHash('sha256')
          .update(files.get(n) ?? '')
          .digest('hex')}  ${n}\n`,
    )
    .join('');
}

/** Parse `sha256sum` output into name → hex; throws on a malformed line. */
export function parseSha256Sums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m?.[1] || !m[2]) throw new Error(`SHA256SUMS: malformed line "${line.slice(0, 80)}"`);
    out.set(m[2], m[1]);
  }
  return out;
}
