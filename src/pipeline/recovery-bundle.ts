/**
 * Writing, encrypting, verifying/extracting and rotating disaster-recovery bundles on disk (the pure
 * parts — names, texts, shapes — are src/core/recovery-bundle.ts, which also documents the format).
 *
 * Tools followed: `tar` (GNU tar: `--sort=name --owner=0 --group=0 --numeric-owner --mtime=@<s>`)
 * and `openssl enc -aes-256-cbc -pbkdf2 -iter 600000 -md sha256 -salt` with `-pass stdin`: the
 * passphrase reaches openssl through a pipe, never argv or a file other than `<bundle>.PASSWORD`.
 * Plaintext (config, password) exists on disk only inside a 0700 staging directory created in the
 * output directory and removed whatever happens.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runChecked, run } from '../adapters/process.js';
import { KopiDockaError } from '../errors.js';
import {
  BUNDLE_SUFFIXES,
  OPENSSL_CIPHER_ARGS,
  bundleFilesToRemove,
  bundleHmac,
  bundleStem,
  parseBundleFileName,
  parseHmacFile,
  passphraseCheck,
  parseSha256Sums,
  renderHmacFile,
  renderReadme,
  renderRecoverScript,
  renderSha256Sums,
  repositoryRecoveryInfo,
  type KopiaIdentity,
  type RepositoryRecoveryInfo,
} from '../core/recovery-bundle.js';
import type { BackendSecrets, RepositoryBackend } from '../core/repository-backend.js';

/** A bundle problem the user must act on: wrong passphrase, tampering, an existing target… */
export class RecoveryBundleError extends KopiDockaError {}

export interface WriteRecoveryBundleOptions {
  /** Directory for the bundle files (created 0700 when missing). */
  outputDir: string;
  /** The kopi-docka config file's text, bundled as kopi-docka.conf. */
  configText: string;
  /** Where that config lives (recover.sh puts it back there). */
  configPath: string;
  backend: RepositoryBackend;
  /** Only to record which credential variable names this host uses; values are never written. */
  backendSecrets?: BackendSecrets;
  /** The Kopia repository password (bundled as kopia-password.txt). */
  passwordOfRepository: string;
  /** The password file the config names (`password_file`), if any: recover.sh recreates it. */
  passwordFile?: string;
  /** Kopia config file, cache dir and `user@host` identity kopi-docka connects with. */
  kopia: KopiaIdentity;
  /** `kopia repository status --json`, parsed (only its identifying fields are kept). */
  repositoryStatus?: unknown;
  /** backup-status.json: units, newest complete restore point of each, sizes (JSON-serialisable). */
  status: unknown;
  /** Keep the newest N bundles (N ≥ 1) in outputDir; older bundle files are removed. */
  retention: number;
  now: Date;
  /** SFTP: the known_hosts text to bundle; read from backend.knownHostsFile when absent. */
  knownHostsText?: string;
  /** Per-call timeout for tar/openssl in ms (default 120 000). */
  timeoutMs?: number;
}

export interface RecoveryBundleResult {
  /** Absolute paths. */
  bundlePath: string;
  passwordPath: string;
  readmePath: string;
  hmacPath: string;
  /** Bundle files removed by rotation (names in outputDir). */
  removed: string[];
  info: RepositoryRecoveryInfo;
}

const DEFAULT_TIMEOUT_MS = 120_000;

/** Create `p` with `mode` at open time (O_EXCL: never an existing file, never a chmod afterwards). */
async function writeNew(p: string, data: string | Buffer, mode: number): Promise<void> {
  const fh = await open(p, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Write one bundle `kopi-docka-recovery-<stamp>.{tar.enc,PASSWORD,README,HMAC}` into outputDir, then
 * rotate (keep the newest `retention`). See src/core/recovery-bundle.ts for the contents.
 *
 * Order: staging dir (0700) with the plaintext files → tar → `openssl enc` into a hidden temp file →
 * PASSWORD (0600 at creation) → HMAC → README → rename the temp file to `<stem>.tar.enc` (a bundle
 * appears complete or not at all) → staging removed → rotation.
 *
 * @throws RecoveryBundleError when a bundle with this stamp exists already; BackendConfigError for an
 *   invalid backend; ProcessError when tar/openssl fail; fs errors (EACCES…) as they come.
 */
export async function writeRecoveryBundle(opts: WriteRecoveryBundleOptions): Promise<RecoveryBundleResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const outputDir = path.resolve(opts.outputDir);
  await mkdir(outputDir, { recursive: true, mode: 0o700 });
  const stem = bundleStem(opts.now);
  const bundlePath = path.join(outputDir, `${stem}.tar.enc`);
  const passwordPath = path.join(outputDir, `${stem}.PASSWORD`);
  const readmePath = path.join(outputDir, `${stem}.README`);
  const hmacPath = path.join(outputDir, `${stem}.HMAC`);
  for (const p of [bundlePath, passwordPath, readmePath, hmacPath]) {
    if (
      await stat(p).then(
        () => true,
        () => false,
      )
    ) {
      throw new RecoveryBundleError(`a recovery bundle for ${stem} already exists: ${p}`, {
        hint: 'bundles are named by the second they are made in; try again in a second',
      });
    }
  }

  const info = repositoryRecoveryInfo({
    backend: opts.backend,
    ...(opts.backendSecrets ? { secrets: opts.backendSecrets } : {}),
    kopia: opts.kopia,
    configPath: opts.configPath,
    ...(opts.passwordFile === undefined ? {} : { passwordFile: opts.passwordFile }),
    repositoryStatus: opts.repositoryStatus,
    now: opts.now,
  });
  const files = new Map<string, string>([
    ['kopia-repository.json', `${JSON.stringify(info, null, 2)}\n`],
    ['kopia-password.txt', `${opts.passwordOfRepository}\n`],
    ['kopi-docka.conf', opts.configText],
    ['recover.sh', renderRecoverScript(info)],
    ['backup-status.json', `${JSON.stringify(opts.status ?? null, null, 2)}\n`],
  ]);
  if (opts.backend.kind === 'sftp') {
    files.set('known_hosts', opts.knownHostsText ?? (await readFile(opts.backend.knownHostsFile, 'utf8')));
  }
  files.set('SHA256SUMS', renderSha256Sums(files));

  const staging = await mkdtemp(path.join(outputDir, '.staging-'));
  const tmpBundle = path.join(outputDir, `.${stem}.tar.enc.tmp`);
  let renamed = false;
  try {
    const dir = path.join(staging, stem);
    await mkdir(dir, { mode: 0o700 });
    for (const [name, content] of files) {
      await writeNew(path.join(dir, name), content, name === 'recover.sh' ? 0o700 : 0o600);
    }
    const tarPath = path.join(staging, `${stem}.tar`);
    await runChecked(
      [
        'tar',
        '--create',
        `--file=${tarPath}`,
        '--sort=name',
        '--owner=0',
        '--group=0',
        '--numeric-owner',
        `--mtime=@${Math.floor(opts.now.getTime() / 1000)}`,
        `--directory=${staging}`,
        stem,
      ],
      { timeoutMs },
    );

    const passphrase = randomBytes(32).toString('base64url'); // 256 bits, no newline, shell-safe
    // The temp output exists with 0600 before openssl writes it (openssl truncates, keeps the mode).
    await writeNew(tmpBundle, '', 0o600);
    await runChecked(
      ['openssl', 'enc', ...OPENSSL_CIPHER_ARGS, '-in', tarPath, '-out', tmpBundle, '-pass', 'stdin'],
      {
        input: `${passphrase}\n`,
        timeoutMs,
      },
    );
    const ciphertext = await readFile(tmpBundle);

    await writeNew(passwordPath, `${passphrase}\n`, 0o600);
    await writeNew(
      hmacPath,
      renderHmacFile(bundleHmac(ciphertext, passphrase), `${stem}.tar.enc`, passphraseCheck(passphrase)),
      0o644,
    );
    await writeNew(readmePath, renderReadme(stem, info), 0o644);
    await rename(tmpBundle, bundlePath);
    renamed = true;
  } catch (e) {
    // No half bundle: the companions of a bundle that was never renamed into place go too.
    if (!renamed) {
      await Promise.all([passwordPath, hmacPath, readmePath].map((p) => rm(p, { force: true })));
    }
    throw e;
  } finally {
    await rm(staging, { recursive: true, force: true });
    await rm(tmpBundle, { force: true });
  }

  const removed = await rotateRecoveryBundles(outputDir, opts.retention);
  return { bundlePath, passwordPath, readmePath, hmacPath, removed, info };
}

/**
 * Keep the newest `retention` bundles in `dir` (by the stamp in their names); remove every file of
 * the older ones (`.tar.enc`, `.PASSWORD`, `.README`, `.HMAC`). Other files are never touched.
 * @returns the names removed.
 */
export async function rotateRecoveryBundles(dir: string, retention: number): Promise<string[]> {
  const names = await readdir(dir);
  const doomed = bundleFilesToRemove(names, retention);
  for (const n of doomed) await rm(path.join(dir, n), { force: true });
  return doomed;
}

/** The names of the bundles (`.tar.enc`) in `dir`, oldest first. */
export async function listRecoveryBundles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => parseBundleFileName(n)?.suffix === '.tar.enc').sort();
}

export interface ExtractRecoveryBundleOptions {
  /** The `<stem>.tar.enc` file. */
  bundlePath: string;
  /** The passphrase, or read from `passwordFile` (its first line). */
  passphrase?: string;
  passwordFile?: string;
  /** Directory to create with the bundle's files; must not exist. */
  destDir: string;
  /**
   * The `.HMAC` file (default `<stem>.HMAC` next to the bundle). When it is missing the bundle is
   * refused unless `allowMissingHmac` (the SHA256SUMS inside are still checked).
   */
  hmacPath?: string;
  allowMissingHmac?: boolean;
  timeoutMs?: number;
}

/**
 * Verify, decrypt and extract a bundle, all or nothing: HMAC of the ciphertext (tampering) →
 * `openssl enc -d` into a 0700 temp dir (a wrong passphrase fails here: openssl's "bad decrypt") →
 * `tar -x` there → every file checked against SHA256SUMS → the directory renamed to `destDir`.
 * On any failure nothing is left at `destDir` and the temp dir is removed.
 *
 * @returns the files of the bundle, name → content.
 * @throws RecoveryBundleError: "wrong passphrase…", "…was modified…", "…exists already", "…missing".
 */
export async function extractRecoveryBundle(
  opts: ExtractRecoveryBundleOptions,
): Promise<Map<string, Buffer>> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const bundlePath = path.resolve(opts.bundlePath);
  const destDir = path.resolve(opts.destDir);
  const parsed = parseBundleFileName(path.basename(bundlePath));
  if (!parsed || parsed.suffix !== '.tar.enc') {
    throw new RecoveryBundleError(
      `${bundlePath} is not named like a recovery bundle (kopi-docka-recovery-<time>.tar.enc)`,
    );
  }
  const stem = path.basename(bundlePath).slice(0, -'.tar.enc'.length);
  let passphrase = opts.passphrase;
  if (passphrase === undefined) {
    if (opts.passwordFile === undefined)
      throw new RecoveryBundleError('no passphrase and no password file given');
    passphrase = (await readFile(opts.passwordFile, 'utf8')).split('\n')[0] ?? '';
  }
  passphrase = passphrase.trim();
  if (
    await stat(destDir).then(
      () => true,
      () => false,
    )
  ) {
    throw new RecoveryBundleError(`${destDir} exists already; extract into a new directory`);
  }

  const ciphertext = await readFile(bundlePath);
  const hmacPath = opts.hmacPath ?? path.join(path.dirname(bundlePath), `${stem}.HMAC`);
  const hmacText = await readFile(hmacPath, 'utf8').catch(() => undefined);
  let want: { hmac: string; passphraseCheck: string } | undefined;
  if (hmacText === undefined) {
    if (!opts.allowMissingHmac) {
      throw new RecoveryBundleError(`${hmacPath} is missing: cannot check the bundle was not modified`, {
        hint: 'copy the .HMAC file next to the bundle, or accept an unchecked bundle (SHA256SUMS inside still checked)',
      });
    }
  } else {
    want = parseHmacFile(hmacText);
    if (want === undefined) throw new RecoveryBundleError(`${hmacPath} is not a kopi-docka HMAC file`);
    // Definite, before any decryption: openssl's own padding check lets ~1 wrong key in 256 through.
    if (!sameHex(passphraseCheck(passphrase), want.passphraseCheck)) {
      throw new RecoveryBundleError(`wrong passphrase for ${path.basename(bundlePath)}`, {
        hint: `the passphrase is the first line of ${stem}.PASSWORD, made together with this bundle`,
      });
    }
    if (!sameHex(bundleHmac(ciphertext, passphrase), want.hmac)) {
      throw new RecoveryBundleError(
        `${path.basename(bundlePath)} does not match its HMAC: the bundle was modified or corrupted after it was written`,
        { hint: 'use an intact copy of the bundle; nothing was extracted' },
      );
    }
  }

  // mkdtemp makes the directory 0700: the plaintext tar never is readable by others.
  const work = await mkdtemp(path.join(path.dirname(destDir), `.${path.basename(destDir)}.partial-`));
  try {
    // Decrypt to a file in the private dir; nothing is extracted before it and the checks passed.
    // Without a .HMAC file a wrong key shows as openssl's "bad decrypt" (its padding check, ≈255 of
    // 256 wrong keys) or as garbage that tar or SHA256SUMS reject.
    const tarPath = path.join(work, 'bundle.tar');
    await writeFile(tarPath, '', { mode: 0o600 });
    const dec = await run(
      ['openssl', 'enc', '-d', ...OPENSSL_CIPHER_ARGS, '-in', bundlePath, '-out', tarPath, '-pass', 'stdin'],
      { input: `${passphrase}\n`, timeoutMs },
    );
    if (dec.code !== 0) {
      const bad = /bad decrypt|wrong final block length|bad magic/i.test(dec.stderrTail);
      throw new RecoveryBundleError(
        bad
          ? `wrong passphrase for ${path.basename(bundlePath)} (or the bundle is damaged): openssl could not decrypt it`
          : `openssl could not decrypt ${path.basename(bundlePath)}: ${dec.stderrTail.trim().split('\n').slice(-2).join(' | ')}`,
        { hint: `the passphrase is the first line of ${stem}.PASSWORD, made together with this bundle` },
      );
    }
    const out = path.join(work, 'x');
    await mkdir(out, { mode: 0o700 });
    const tarRes = await run(
      ['tar', '--extract', `--file=${tarPath}`, '--no-same-owner', `--directory=${out}`],
      { timeoutMs },
    );
    if (tarRes.code !== 0) {
      throw new RecoveryBundleError(
        `the decrypted bundle is not a valid tar archive (damaged bundle): ${tarRes.stderrTail.trim()}`,
      );
    }
    const inner = path.join(out, stem);
    const names = await readdir(inner).catch(() => {
      throw new RecoveryBundleError(`the bundle does not hold the directory ${stem}/`);
    });
    const files = new Map<string, Buffer>();
    for (const n of names) files.set(n, await readFile(path.join(inner, n)));
    const sumsText = files.get('SHA256SUMS');
    if (sumsText === undefined) throw new RecoveryBundleError('the bundle has no SHA256SUMS');
    let sums: Map<string, string>;
    try {
      sums = parseSha256Sums(sumsText.toString('utf8'));
    } catch (e) {
      throw new RecoveryBundleError(`the bundle's SHA256SUMS is damaged: ${(e as Error).message}`);
    }
    for (const [n, content] of files) {
      if (n === 'SHA256SUMS') continue;
      const want = sums.get(n);
      const got = createHash('sha256').update(content).digest('hex');
      if (want !== got)
        throw new RecoveryBundleError(
          `${n} in the bundle does not match SHA256SUMS: the bundle was modified`,
        );
    }
    for (const n of sums.keys()) {
      if (!files.has(n))
        throw new RecoveryBundleError(`${n} is listed in SHA256SUMS but missing from the bundle`);
    }
    await rename(inner, destDir);
    return files;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function sameHex(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
}

/** All the file names (in outputDir) of the bundle whose `.tar.enc` is `bundleName`. */
export function bundleCompanions(bundleName: string): string[] {
  const stem = bundleName.replace(/\.tar\.enc$/, '');
  return BUNDLE_SUFFIXES.map((s) => `${stem}${s}`);
}
