/**
 * Where the repository is and its password: from the config file (repository_path, and
 * KOPI_DOCKA_PASSWORD, password_file or password), or the embedded default when there is no file.
 * The environment is read by the caller and passed in.
 */
import path from 'node:path';
import { ConfigError } from '../errors.js';
import type { IniEntry } from './ini.js';
import { KEY_BACKENDS, embeddedBackend, fileBackend, type BackendSource } from './keys-repository.js';
import { ENV, modeText, type EnvGetter, type FoundFile } from './locate.js';
import { ensureGeneratedPassword, loosePermissionWarning, readPasswordFile } from './password.js';
import type { FileValue } from './read.js';
import type { Origin } from './types.js';

/** The placeholder of the original's README and template; the original refused to run with it. */
const PLACEHOLDER_PASSWORD = 'CHANGE_ME_TO_A_SECURE_PASSWORD';

export interface RepositorySource extends BackendSource {
  /** '' unless the backend is filesystem. */
  repositoryPath: string;
  password: string;
  passwordFile: string | undefined;
}

/** No config file: the embedded default's repository under the state dir, its password generated once. */
export async function embeddedRepository(
  stateDir: string,
  envPassword: string | undefined,
  origins: Record<string, Origin>,
  warnings: string[],
  env: EnvGetter,
): Promise<RepositorySource> {
  const repositoryPath = path.join(stateDir, 'repository');
  const backend = await embeddedBackend(repositoryPath, env);
  for (const key of ['repository_path', 'password', 'password_file', 'compression']) {
    origins[`kopia.${key}`] = 'embedded-default';
  }
  if (envPassword !== undefined) {
    origins['kopia.password'] = 'env';
    origins['kopia.password_file'] = 'default';
    warnings.push(
      `no config file found; using the embedded default: filesystem repository ${repositoryPath} (password from ${ENV.password})`,
    );
    return { ...backend, repositoryPath, password: envPassword, passwordFile: undefined };
  }
  const passwordFile = path.join(stateDir, 'repository.password');
  const generated = await ensureGeneratedPassword(passwordFile, ENV.stateDir);
  const loose = loosePermissionWarning(passwordFile, generated.stats, 'holds the repository password');
  if (loose) warnings.push(loose);
  warnings.push(
    `no config file found; using the embedded default: filesystem repository ${repositoryPath} (password in ${passwordFile})`,
  );
  return { ...backend, repositoryPath, password: generated.password, passwordFile };
}

/** Throws when a password key is present but empty (an empty password is a mistake, not a password). */
function refuseEmptyPasswordKeys(file: string, pw: IniEntry | undefined, pwFile: IniEntry | undefined): void {
  if (pw !== undefined && pw.value === '') {
    throw new ConfigError(
      `${file}:${pw.line}: [kopia] password is empty`,
      'set it, or use password_file = /path/to/file (recommended) instead',
    );
  }
  if (pwFile !== undefined && pwFile.value === '') {
    throw new ConfigError(
      `${file}:${pwFile.line}: [kopia] password_file is empty`,
      'name the file that holds the repository password, or remove the line',
    );
  }
}

/** The password from KOPI_DOCKA_PASSWORD, else password_file, else password (precedence in that order). */
async function passwordFromFile(
  found: FoundFile,
  pw: IniEntry | undefined,
  pwFile: IniEntry | undefined,
  envPassword: string | undefined,
  warnings: string[],
): Promise<{ password: string; passwordFile: string | undefined }> {
  if (envPassword !== undefined) return { password: envPassword, passwordFile: undefined };
  if (pwFile !== undefined) {
    // Relative to the config file, so a config and its password file can move together.
    const passwordFile = path.resolve(path.dirname(found.file), pwFile.value);
    const read = await readPasswordFile(passwordFile, `${found.file}:${pwFile.line}: [kopia] password_file`);
    const loose = loosePermissionWarning(passwordFile, read.stats, 'holds the repository password');
    if (loose) warnings.push(loose);
    return { password: read.password, passwordFile };
  }
  if (pw !== undefined) {
    if (pw.value === PLACEHOLDER_PASSWORD) {
      warnings.push(
        `${found.file}:${pw.line}: [kopia] password is still the placeholder from the original README; anyone who has read it can open this repository — ` +
          'set a real password (for an existing repository: kopia repository change-password, then update this file)',
      );
    }
    return { password: pw.value, passwordFile: undefined };
  }
  throw new ConfigError(
    `${found.file}: no repository password: [kopia] has neither password_file nor password`,
    `add "password_file = /etc/kopi-docka.password" (recommended; a file with mode 600 holding the password) or "password = …" under [kopia] in ${found.file}, or set ${ENV.password}`,
  );
}

/** Loose permissions on a config that holds a password or hooks. */
function configFileWarnings(found: FoundFile, holdsPassword: boolean): string[] {
  const warnings: string[] = [];
  if (holdsPassword) {
    const loose = loosePermissionWarning(found.file, found.stats, 'holds the repository password');
    if (loose) warnings.push(loose);
  }
  if ((found.stats.mode & 0o022) !== 0) {
    warnings.push(
      `${found.file} is writable by group/others (mode ${modeText(found.stats.mode)}); its hooks run as this user — run: chmod go-w ${found.file}`,
    );
  }
  return warnings;
}

/** A config file: the backend (repository_path for filesystem), and a password from the environment, password_file or password. */
export async function fileRepository(
  found: FoundFile,
  values: Map<string, FileValue>,
  envPassword: string | undefined,
  origins: Record<string, Origin>,
  warnings: string[],
  env: EnvGetter,
): Promise<RepositorySource> {
  const repo = values.get('kopia.repository_path');
  // A key of another backend without `backend = …` is reported as that (fileBackend), not as a missing path.
  const otherBackendKey = [...KEY_BACKENDS.keys()].some(
    (k) => k !== 'repository_path' && values.has(`kopia.${k}`),
  );
  const backend =
    values.has('kopia.backend') || otherBackendKey
      ? await fileBackend(found, values, env, origins)
      : undefined;
  if (backend === undefined && (repo === undefined || typeof repo.value !== 'string')) {
    throw new ConfigError(
      `${found.file}: [kopia] repository_path is missing`,
      'add "repository_path = /absolute/path/of/the/repository" under [kopia] (or "backend = s3|b2|azure|gcs|sftp|webdav|rclone|server" and its keys: docs/configuration.md)',
    );
  }
  const pw = values.get('kopia.password')?.entry;
  const pwFile = values.get('kopia.password_file')?.entry;
  // The password "comes from the file" whether inline or through the password_file it names.
  if (pwFile !== undefined) origins['kopia.password'] = 'file';
  refuseEmptyPasswordKeys(found.file, pw, pwFile);
  if (pw !== undefined && pwFile !== undefined) {
    warnings.push(
      `${found.file}: both password (line ${pw.line}) and password_file (line ${pwFile.line}) are set in [kopia]; password_file wins — remove the password line`,
    );
  }
  const { password, passwordFile } = await passwordFromFile(found, pw, pwFile, envPassword, warnings);
  if (envPassword !== undefined) origins['kopia.password'] = 'env';
  warnings.push(...configFileWarnings(found, pw !== undefined));
  const source = backend ?? (await fileBackend(found, values, env, origins));
  const repositoryPath = source.backend.kind === 'filesystem' ? source.backend.path : '';
  return { ...source, repositoryPath, password, passwordFile };
}
