/**
 * The `[kopia]` keys that say where the repository is — `backend` and its typed parameters — and the
 * loader step that turns them (with the credentials from the environment or a 0600 credentials file)
 * into a `RepositoryBackend` + `BackendSecrets` (src/core/repository-backend.ts, which builds the
 * Kopia argv/env from them). Declared here, spliced into the key table by src/config/schema.ts.
 *
 * | backend      | keys (required in bold)                                                               |
 * |--------------|----------------------------------------------------------------------------------------|
 * | `filesystem` | **repository_path**                                                                    |
 * | `s3`         | **bucket**, endpoint, region, prefix, disable_tls, disable_tls_verification, root_ca_pem_path |
 * | `b2`         | **bucket**, prefix                                                                     |
 * | `azure`      | **azure_container**, **azure_storage_account**, azure_storage_domain, prefix          |
 * | `gcs`        | **bucket**, prefix, gcs_credentials_file                                               |
 * | `sftp`       | **sftp_host**, sftp_port (22), **sftp_user**, **sftp_path**, **sftp_key_file**, **sftp_known_hosts_file** |
 * | `webdav`     | **webdav_url**                                                                         |
 * | `rclone`     | **rclone_remote_path**, rclone_exe, rclone_args, rclone_startup_timeout               |
 * | `server`     | **server_url**, **server_cert_fingerprint**                                           |
 *
 * Credentials are never keys: Kopia's own environment variables (AWS_ACCESS_KEY_ID, B2_KEY, …; see
 * CREDENTIAL_ENV) in kopi-docka's environment, or the same `NAME=value` lines in `credentials_file`
 * (mode 0600 or stricter, else refused). The environment wins over the file, variable by variable.
 */
import type { Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  BACKEND_KINDS,
  BackendConfigError,
  describeBackend,
  repositoryArgs,
  type BackendKind,
  type BackendSecrets,
  type RepositoryBackend,
} from '../core/repository-backend.js';
import { ConfigError } from '../errors.js';
import type { IniEntry } from './ini.js';
import { resolved, type KeyDef } from './key.js';
import { describeFsError, modeText, type EnvGetter, type FoundFile } from './locate.js';
import type { FileValue } from './read.js';
import type { Config, KopiaSettings, Origin } from './types.js';
import {
  ValueError,
  parseAbsolutePath,
  parseBool,
  parseChoice,
  parseInteger,
  splitShellWords,
} from './values.js';

/** Kopia's credential environment variables → the BackendSecrets field each fills. */
export const CREDENTIAL_ENV: Readonly<Record<string, keyof BackendSecrets>> = {
  AWS_ACCESS_KEY_ID: 's3AccessKeyId',
  AWS_SECRET_ACCESS_KEY: 's3SecretAccessKey',
  AWS_SESSION_TOKEN: 's3SessionToken',
  B2_KEY_ID: 'b2KeyId',
  B2_KEY: 'b2Key',
  AZURE_STORAGE_KEY: 'azureStorageKey',
  AZURE_STORAGE_SAS_TOKEN: 'azureSasToken',
  AZURE_TENANT_ID: 'azureTenantId',
  AZURE_CLIENT_ID: 'azureClientId',
  AZURE_CLIENT_SECRET: 'azureClientSecret',
  KOPIA_WEBDAV_USERNAME: 'webdavUsername',
  KOPIA_WEBDAV_PASSWORD: 'webdavPassword',
};

/** A value that goes into Kopia's argv: one line, no control characters, not empty. */
function parseText(raw: string): string {
  const v = raw.trim();
  if (v === '') throw new ValueError('a value (the key is set but empty: remove the line or fill it in)');
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(v)) throw new ValueError('one line of text without control characters');
  return v;
}

function parseUrl(raw: string): string {
  const v = parseText(raw);
  if (!/^https?:\/\//i.test(v)) throw new ValueError('a URL starting with http:// or https://');
  return v;
}

/** What every backend key shares: which backends take it (a key set for another one is refused). */
interface BackendKeySpec {
  name: string;
  type: string;
  doc: string;
  backends: readonly BackendKind[];
  parse: (raw: string) => unknown;
  show: (b: RepositoryBackend) => string | number | boolean | string[] | null;
  secret?: boolean;
  quotes?: 'refuse' | 'parse';
  defaultDoc?: string;
}

/** Which backends use each key (repository_path: filesystem; backend and credentials_file: all). */
export const KEY_BACKENDS = new Map<string, readonly BackendKind[]>([['repository_path', ['filesystem']]]);

function backendKey(spec: BackendKeySpec): KeyDef {
  KEY_BACKENDS.set(spec.name, spec.backends);
  const which = spec.backends.map((b) => `\`${b}\``).join(', ');
  return resolved({
    section: 'kopia',
    name: spec.name,
    type: spec.type,
    defaultDoc: spec.defaultDoc ?? '—',
    doc: `(${which}) ${spec.doc}`,
    parse: spec.parse,
    quotes: spec.quotes ?? 'refuse',
    show: (cfg: Config) => {
      const b = backendOf(cfg.kopia);
      return spec.backends.includes(b.kind) ? spec.show(b) : null;
    },
  });
}

/** Shorthands for `show`: the field when the backend has it. */
const field =
  <K extends string>(k: K) =>
  (b: RepositoryBackend): string | number | boolean | string[] | null => {
    const v = (b as unknown as Record<string, unknown>)[k]; // every backend variant is a plain record
    return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean'
      ? v
      : Array.isArray(v)
        ? (v as string[])
        : null;
  };

/** The keys, in the order `config show` and the docs list them (after repository_path). */
export const REPOSITORY_KEYS: readonly KeyDef[] = [
  resolved({
    section: 'kopia',
    name: 'backend',
    type: BACKEND_KINDS.map((k) => `\`${k}\``).join(' \\| '),
    defaultDoc: '`filesystem`',
    doc: 'Where the repository lives. Each backend takes the keys marked with its name below; a key of another backend is refused. See [Repositories](#repositories-backends).',
    parse: (v) => parseChoice(v, BACKEND_KINDS),
    show: (cfg) => backendOf(cfg.kopia).kind,
  }),
  backendKey({
    name: 'bucket',
    type: 'string',
    backends: ['s3', 'b2', 'gcs'],
    doc: 'Bucket name (**required**). It must exist (Kopia does not create buckets).',
    parse: parseText,
    show: field('bucket'),
  }),
  backendKey({
    name: 'prefix',
    type: 'string',
    backends: ['s3', 'b2', 'azure', 'gcs'],
    doc: 'Object name prefix, e.g. `hosts/web1/`; end it with `/` to use it as a folder (Kopia prepends it as is).',
    parse: parseText,
    show: field('prefix'),
  }),
  backendKey({
    name: 'endpoint',
    type: '`host[:port]`',
    backends: ['s3'],
    defaultDoc: '`s3.amazonaws.com`',
    doc: 'S3 server, without a scheme or path (MinIO, SeaweedFS, Wasabi, …).',
    parse: parseText,
    show: field('endpoint'),
  }),
  backendKey({
    name: 'region',
    type: 'string',
    backends: ['s3'],
    doc: 'S3 region, e.g. `eu-central-1`.',
    parse: parseText,
    show: field('region'),
  }),
  backendKey({
    name: 'disable_tls',
    type: 'boolean',
    backends: ['s3'],
    defaultDoc: '`false`',
    doc: 'Plain HTTP to the endpoint: only for a server on loopback or a trusted network.',
    parse: parseBool,
    show: (b) => (b.kind === 's3' ? b.disableTls === true : null),
  }),
  backendKey({
    name: 'disable_tls_verification',
    type: 'boolean',
    backends: ['s3'],
    defaultDoc: '`false`',
    doc: "HTTPS without checking the server's certificate. Prefer `root_ca_pem_path`.",
    parse: parseBool,
    show: (b) => (b.kind === 's3' ? b.disableTlsVerification === true : null),
  }),
  backendKey({
    name: 'root_ca_pem_path',
    type: 'absolute path',
    backends: ['s3'],
    doc: 'A PEM CA bundle to trust for the endpoint (a private CA).',
    parse: parseAbsolutePath,
    show: field('rootCaPemPath'),
  }),
  backendKey({
    name: 'azure_container',
    type: 'string',
    backends: ['azure'],
    doc: 'Blob container (**required**).',
    parse: parseText,
    show: field('container'),
  }),
  backendKey({
    name: 'azure_storage_account',
    type: 'string',
    backends: ['azure'],
    doc: 'Storage account name (**required**).',
    parse: parseText,
    show: field('storageAccount'),
  }),
  backendKey({
    name: 'azure_storage_domain',
    type: 'string',
    backends: ['azure'],
    defaultDoc: '`blob.core.windows.net`',
    doc: 'Storage domain of another Azure cloud.',
    parse: parseText,
    show: field('storageDomain'),
  }),
  backendKey({
    name: 'gcs_credentials_file',
    type: 'absolute path',
    backends: ['gcs'],
    defaultDoc: "Google's default credentials",
    doc: 'A service-account JSON key file.',
    parse: parseAbsolutePath,
    show: field('credentialsFile'),
  }),
  backendKey({
    name: 'sftp_host',
    type: 'host name or address',
    backends: ['sftp'],
    doc: 'SSH server (**required**).',
    parse: parseText,
    show: field('host'),
  }),
  backendKey({
    name: 'sftp_port',
    type: 'integer 1–65535',
    backends: ['sftp'],
    defaultDoc: '`22`',
    doc: 'SSH port.',
    parse: (v) => parseInteger(v, 1, 65535),
    show: field('port'),
  }),
  backendKey({
    name: 'sftp_user',
    type: 'string',
    backends: ['sftp'],
    doc: 'SSH user (**required**).',
    parse: parseText,
    show: field('username'),
  }),
  backendKey({
    name: 'sftp_path',
    type: 'path on the server',
    backends: ['sftp'],
    doc: 'Repository directory on the server (**required**); relative to the login directory unless absolute.',
    parse: parseText,
    show: field('path'),
  }),
  backendKey({
    name: 'sftp_key_file',
    type: 'absolute path',
    backends: ['sftp'],
    doc: 'Private key without a passphrase (**required**; key authentication only). Never put in a recovery bundle.',
    parse: parseAbsolutePath,
    show: field('keyFile'),
  }),
  backendKey({
    name: 'sftp_known_hosts_file',
    type: 'absolute path',
    backends: ['sftp'],
    doc: "known_hosts file holding the server's host key (**required**; host keys are always checked — `ssh-keyscan -p PORT HOST > FILE`, then compare the fingerprint).",
    parse: parseAbsolutePath,
    show: field('knownHostsFile'),
  }),
  backendKey({
    name: 'webdav_url',
    type: 'URL',
    backends: ['webdav'],
    doc: 'http(s)://host[:port]/path of an existing collection (**required**). User and password: `KOPIA_WEBDAV_USERNAME`, `KOPIA_WEBDAV_PASSWORD`, never in the URL.',
    parse: parseUrl,
    show: field('url'),
  }),
  backendKey({
    name: 'rclone_remote_path',
    type: '`remote:path`',
    backends: ['rclone'],
    doc: "rclone remote and path (**required**); rclone's own config holds its credentials.",
    parse: parseText,
    show: field('remotePath'),
  }),
  backendKey({
    name: 'rclone_exe',
    type: 'path',
    backends: ['rclone'],
    defaultDoc: '`rclone` on PATH',
    doc: 'The rclone program.',
    parse: parseText,
    show: field('rcloneExe'),
  }),
  backendKey({
    name: 'rclone_args',
    type: 'command-line words',
    backends: ['rclone'],
    defaultDoc: 'none',
    quotes: 'parse',
    doc: 'Extra rclone arguments, split like a shell would (never run through one), e.g. `--config=/root/.config/rclone/rclone.conf`.',
    parse: (v) => splitShellWords(v),
    show: field('rcloneArgs'),
  }),
  backendKey({
    name: 'rclone_startup_timeout',
    type: 'integer ≥ 1 (s)',
    backends: ['rclone'],
    defaultDoc: "Kopia's (15)",
    doc: 'How long Kopia waits for `rclone serve` to start.',
    parse: (v) => parseInteger(v, 1, 3600),
    show: field('startupTimeoutSeconds'),
  }),
  backendKey({
    name: 'server_url',
    type: 'https URL',
    backends: ['server'],
    doc: 'A Kopia repository server (**required**); its user password is the repository password (`password`/`password_file`).',
    parse: parseUrl,
    show: field('url'),
  }),
  backendKey({
    name: 'server_cert_fingerprint',
    type: '64 hex digits',
    backends: ['server'],
    doc: "SHA-256 of the server's certificate (**required**; colons allowed).",
    parse: parseText,
    show: field('serverCertFingerprint'),
  }),
  resolved({
    section: 'kopia',
    name: 'credentials_file',
    type: 'path (mode 0600)',
    doc: `Backend credentials as \`NAME=value\` lines with Kopia's variable names (${Object.keys(
      CREDENTIAL_ENV,
    )
      .map((n) => `\`${n}\``)
      .join(
        ', ',
      )}); \`#\` starts a comment line. Refused unless only its owner can read it. The same variables in the environment win. Relative to the config file's directory.`,
    parse: parseText,
    show: (cfg) => cfg.kopia.credentialsFile ?? null,
  }),
];

// ---------------------------------------------------------------------------------------------------
// Resolution (the loader's step)

export interface BackendSource {
  backend: RepositoryBackend;
  backendSecrets: BackendSecrets;
  credentialsFile: string | undefined;
}

/** Required keys per backend (INI names). */
const REQUIRED: Readonly<Record<BackendKind, readonly string[]>> = {
  filesystem: ['repository_path'],
  s3: ['bucket'],
  b2: ['bucket'],
  azure: ['azure_container', 'azure_storage_account'],
  gcs: ['bucket'],
  sftp: ['sftp_host', 'sftp_user', 'sftp_path', 'sftp_key_file', 'sftp_known_hosts_file'],
  webdav: ['webdav_url'],
  rclone: ['rclone_remote_path'],
  server: ['server_url', 'server_cert_fingerprint'],
};

/** The words `repositoryArgs`' messages use for a parameter → the INI key. */
const MESSAGE_FIELD: Readonly<Record<string, string>> = {
  bucket: 'bucket',
  endpoint: 'endpoint',
  region: 'region',
  prefix: 'prefix',
  root_ca_pem_path: 'root_ca_pem_path',
  container: 'azure_container',
  storage_account: 'azure_storage_account',
  storage_domain: 'azure_storage_domain',
  credentials_file: 'gcs_credentials_file',
  host: 'sftp_host',
  port: 'sftp_port',
  username: 'sftp_user',
  key_file: 'sftp_key_file',
  known_hosts_file: 'sftp_known_hosts_file',
  remote_path: 'rclone_remote_path',
  rclone_exe: 'rclone_exe',
  rclone_args: 'rclone_args',
  startup: 'rclone_startup_timeout',
  server_cert_fingerprint: 'server_cert_fingerprint',
};

/** Placeholders that satisfy every credential check, to validate the parameters alone at load. */
const PLACEHOLDER_SECRETS: BackendSecrets = {
  s3AccessKeyId: 'x',
  s3SecretAccessKey: 'x',
  b2KeyId: 'x',
  b2Key: 'x',
  azureStorageKey: 'x',
};

function str(values: Map<string, FileValue>, name: string): string | undefined {
  const v = values.get(`kopia.${name}`)?.value;
  return typeof v === 'string' ? v : undefined;
}

/**
 * `NAME=value` lines (Kopia's variable names only), `#` comment lines and blank lines. Throws
 * ConfigError naming the file and line; never echoes a value.
 */
export function parseCredentialsText(text: string, file: string): BackendSecrets {
  const out: BackendSecrets = {};
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Z0-9_]+)\s*=(.*)$/.exec(line);
    const name = m?.[1];
    if (m === null || name === undefined) {
      throw new ConfigError(
        `${file}:${i + 1}: not a NAME=value line`,
        `write one credential per line, e.g. AWS_ACCESS_KEY_ID=…; known names: ${Object.keys(CREDENTIAL_ENV).join(', ')}`,
      );
    }
    const target = CREDENTIAL_ENV[name];
    if (target === undefined) {
      throw new ConfigError(
        `${file}:${i + 1}: unknown credential variable ${name}`,
        `known names: ${Object.keys(CREDENTIAL_ENV).join(', ')}`,
      );
    }
    let value = (m[2] ?? '').trim();
    const q = /^(["'])(.*)\1$/.exec(value);
    if (q) value = q[2] ?? '';
    if (value !== '') out[target] = value;
  });
  return out;
}

async function readCredentialsFile(file: string, where: string): Promise<BackendSecrets> {
  let st: Stats;
  let text: string;
  try {
    st = await stat(file);
    if (!st.isFile()) throw new Error('not a regular file');
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `${where}: cannot read credentials file ${file}: ${describeFsError(err)}`,
      'create it with one NAME=value line per credential, mode 600, owned by the user running kopi-docka',
    );
  }
  if ((st.mode & 0o077) !== 0) {
    throw new ConfigError(
      `${where}: credentials file ${file} is accessible to group/others (mode ${modeText(st.mode)}); it holds secrets`,
      `run: chmod 600 ${file}`,
    );
  }
  return parseCredentialsText(text, file);
}

/** The credentials: the file's, then the environment's on top (variable by variable). */
async function secretsFrom(
  credentialsFile: string | undefined,
  where: string,
  env: EnvGetter,
): Promise<BackendSecrets> {
  const secrets: BackendSecrets = credentialsFile ? await readCredentialsFile(credentialsFile, where) : {};
  for (const [name, target] of Object.entries(CREDENTIAL_ENV)) {
    const v = env(name);
    if (v !== undefined) secrets[target] = v;
  }
  return secrets;
}

/** No config file: the embedded default's filesystem repository; credentials from the environment. */
export async function embeddedBackend(repositoryPath: string, env: EnvGetter): Promise<BackendSource> {
  return {
    backend: { kind: 'filesystem', path: repositoryPath },
    backendSecrets: await secretsFrom(undefined, '', env),
    credentialsFile: undefined,
  };
}

/**
 * The backend the file's `[kopia]` describes. Throws ConfigError (file, line, key, what is expected,
 * what to do) for a key of another backend, a missing required key, or a malformed parameter
 * (`repositoryArgs`' checks, credentials aside: those are checked where they are used, by `init`).
 */
export async function fileBackend(
  found: FoundFile,
  values: Map<string, FileValue>,
  env: EnvGetter,
  origins: Record<string, Origin>,
): Promise<BackendSource> {
  const file = found.file;
  const entry = (name: string): IniEntry | undefined => values.get(`kopia.${name}`)?.entry;
  const kindEntry = entry('backend');
  const kind = (values.get('kopia.backend')?.value as BackendKind | undefined) ?? 'filesystem';
  const backendWhere = kindEntry
    ? `backend = ${kind} (line ${kindEntry.line})`
    : 'backend = filesystem (the default)';
  for (const [name, kinds] of KEY_BACKENDS) {
    const e = entry(name);
    if (e === undefined || kinds.includes(kind)) continue;
    throw new ConfigError(
      `${file}:${e.line}: [kopia] ${name} is not used by ${backendWhere}; it belongs to ${kinds.join(', ')}`,
      `remove the line, or set "backend = ${kinds[0] ?? ''}" if that is where the repository is`,
    );
  }
  for (const name of REQUIRED[kind]) {
    if (entry(name) !== undefined) continue;
    throw new ConfigError(
      `${file}: [kopia] ${name} is missing (${backendWhere} requires ${REQUIRED[kind].join(', ')})`,
      `add "${name} = …" under [kopia] (see docs/configuration.md, Repositories)`,
    );
  }
  const b = buildBackend(kind, values);
  try {
    repositoryArgs(b, PLACEHOLDER_SECRETS);
  } catch (err) {
    if (!(err instanceof BackendConfigError)) throw err;
    const what = err.message.replace(/^\w+ repository: /, '');
    const word = /^([a-z_]+)/.exec(what)?.[1] ?? '';
    const byKind: Record<string, string | undefined> = {
      url: kind === 'webdav' ? 'webdav_url' : kind === 'server' ? 'server_url' : undefined,
      path: kind === 'sftp' ? 'sftp_path' : kind === 'filesystem' ? 'repository_path' : undefined,
    };
    const key =
      byKind[word] ?? MESSAGE_FIELD[word] ?? (kind === 'filesystem' ? 'repository_path' : undefined);
    const e = (key && entry(key)) ?? kindEntry;
    throw new ConfigError(
      `${file}${e ? `:${e.line}` : ''}: [kopia] ${key ?? 'backend'}: ${what}`,
      `fix the value${e ? ` on line ${e.line}` : ''} (see docs/configuration.md, Repositories)`,
    );
  }
  const credEntry = entry('credentials_file');
  const credentialsFile =
    credEntry === undefined ? undefined : path.resolve(path.dirname(file), credEntry.value);
  const secrets = await secretsFrom(
    credentialsFile,
    credEntry ? `${file}:${credEntry.line}: [kopia] credentials_file` : file,
    env,
  );
  origins['kopia.backend'] = kindEntry ? 'file' : 'default';
  return { backend: b, backendSecrets: secrets, credentialsFile };
}

function buildBackend(kind: BackendKind, values: Map<string, FileValue>): RepositoryBackend {
  const s = (n: string): string => str(values, n) ?? '';
  const o = (n: string): string | undefined => str(values, n);
  const v = (n: string): unknown => values.get(`kopia.${n}`)?.value;
  const clean = <T extends object>(x: T): T =>
    Object.fromEntries(Object.entries(x).filter(([, y]) => y !== undefined)) as T;
  switch (kind) {
    case 'filesystem':
      return { kind, path: s('repository_path') };
    case 's3':
      return clean({
        kind,
        bucket: s('bucket'),
        endpoint: o('endpoint'),
        region: o('region'),
        prefix: o('prefix'),
        disableTls: v('disable_tls') === true ? true : undefined,
        disableTlsVerification: v('disable_tls_verification') === true ? true : undefined,
        rootCaPemPath: o('root_ca_pem_path'),
      });
    case 'b2':
      return clean({ kind, bucket: s('bucket'), prefix: o('prefix') });
    case 'azure':
      return clean({
        kind,
        container: s('azure_container'),
        storageAccount: s('azure_storage_account'),
        prefix: o('prefix'),
        storageDomain: o('azure_storage_domain'),
      });
    case 'gcs':
      return clean({
        kind,
        bucket: s('bucket'),
        prefix: o('prefix'),
        credentialsFile: o('gcs_credentials_file'),
      });
    case 'sftp':
      return {
        kind,
        host: s('sftp_host'),
        port: typeof v('sftp_port') === 'number' ? (v('sftp_port') as number) : 22,
        username: s('sftp_user'),
        path: s('sftp_path'),
        keyFile: s('sftp_key_file'),
        knownHostsFile: s('sftp_known_hosts_file'),
      };
    case 'webdav':
      return { kind, url: s('webdav_url') };
    case 'rclone': {
      const args = v('rclone_args');
      const t = v('rclone_startup_timeout');
      return clean({
        kind,
        remotePath: s('rclone_remote_path'),
        rcloneExe: o('rclone_exe'),
        rcloneArgs: Array.isArray(args) ? (args as string[]) : undefined,
        startupTimeoutSeconds: typeof t === 'number' ? t : undefined,
      });
    }
    case 'server':
      return { kind, url: s('server_url'), serverCertFingerprint: s('server_cert_fingerprint') };
  }
}

/** The configured backend; settings built by hand without one: filesystem at repositoryPath. */
export function backendOf(settings: Pick<KopiaSettings, 'backend' | 'repositoryPath'>): RepositoryBackend {
  return settings.backend ?? { kind: 'filesystem', path: settings.repositoryPath };
}

/** One line for messages: where the repository is (no secrets), e.g. `s3 s3://bkt/p/ at host:9000`. */
export function repositoryDescription(settings: Pick<KopiaSettings, 'backend' | 'repositoryPath'>): string {
  return describeBackend(backendOf(settings));
}
