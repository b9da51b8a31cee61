/**
 * Typed Kopia repository backends and the exact Kopia argv/environment that reach them. PURE: no I/O,
 * no process.env. Every flag and environment variable below was checked against
 * `kopia repository create|connect <provider> --help` of the pinned Kopia (0.23.1) and its source
 * (`cli/storage_*.go`, `repo/blob/<provider>/*_options.go`):
 *
 * | backend    | argv (non-secret)                                                        | secrets → env var (never argv)                                   |
 * |------------|--------------------------------------------------------------------------|------------------------------------------------------------------|
 * | filesystem | `--path`                                                                 | —                                                                |
 * | s3         | `--bucket --endpoint --region --prefix --disable-tls --disable-tls-verification --root-ca-pem-path` | `--access-key` ↔ AWS_ACCESS_KEY_ID, `--secret-access-key` ↔ AWS_SECRET_ACCESS_KEY, `--session-token` ↔ AWS_SESSION_TOKEN |
 * | b2         | `--bucket --prefix`                                                      | `--key-id` ↔ B2_KEY_ID, `--key` ↔ B2_KEY                         |
 * | azure      | `--container --storage-account --prefix --storage-domain`                | `--storage-key` ↔ AZURE_STORAGE_KEY, `--sas-token` ↔ AZURE_STORAGE_SAS_TOKEN, `--tenant-id/--client-id/--client-secret` ↔ AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET |
 * | gcs        | `--bucket --prefix --credentials-file --read-only`                       | — (the credentials file is a path; Google default credentials otherwise) |
 * | sftp       | `--host --port --username --path --keyfile --known-hosts`                | — (key auth only: `--sftp-password` has no env binding, so it is not offered) |
 * | webdav     | `--url`                                                                  | `--webdav-username` ↔ KOPIA_WEBDAV_USERNAME, `--webdav-password` ↔ KOPIA_WEBDAV_PASSWORD |
 * | rclone     | `--remote-path --rclone-exe --rclone-args… --rclone-startup-timeout`     | — (rclone reads its own config)                                   |
 * | server     | `--url --server-cert-fingerprint` (connect only)                         | the server user's password ↔ KOPIA_PASSWORD (set by the Kopia adapter) |
 *
 * Values always travel as `--flag=value` (one argv element), so a value starting with `-` can never
 * be taken for another flag. SFTP never runs an external ssh and never disables host key checking:
 * Kopia's built-in SSH client verifies the server against the known_hosts file (required here).
 */

/** Where the repository lives. Only non-secret parameters: credentials are `BackendSecrets`. */
export type RepositoryBackend =
  | FilesystemBackend
  | S3Backend
  | B2Backend
  | AzureBackend
  | GcsBackend
  | SftpBackend
  | WebdavBackend
  | RcloneBackend
  | ServerBackend;

export interface FilesystemBackend {
  kind: 'filesystem';
  /** Absolute directory of the repository. */
  path: string;
}

export interface S3Backend {
  kind: 's3';
  bucket: string;
  /** `host[:port]`, no scheme (Kopia's default: s3.amazonaws.com). */
  endpoint?: string;
  region?: string;
  /** Object name prefix; end it with `/` to use it as a directory (Kopia concatenates it as is). */
  prefix?: string;
  /** Plain HTTP (`--disable-tls`): only for a server on a trusted network or loopback. */
  disableTls?: boolean;
  /** HTTPS without certificate verification (`--disable-tls-verification`). */
  disableTlsVerification?: boolean;
  /** A PEM CA bundle to trust for the endpoint (`--root-ca-pem-path`, absolute). */
  rootCaPemPath?: string;
}

export interface B2Backend {
  kind: 'b2';
  bucket: string;
  prefix?: string;
}

export interface AzureBackend {
  kind: 'azure';
  container: string;
  storageAccount: string;
  prefix?: string;
  /** e.g. blob.core.chinacloudapi.cn (Kopia's default: blob.core.windows.net). */
  storageDomain?: string;
}

export interface GcsBackend {
  kind: 'gcs';
  bucket: string;
  prefix?: string;
  /** Absolute path of a service-account JSON file; Google default credentials otherwise. */
  credentialsFile?: string;
  readOnly?: boolean;
}

export interface SftpBackend {
  kind: 'sftp';
  host: string;
  /** TCP port, 1..65535 (SSH default 22). */
  port: number;
  username: string;
  /** Repository directory on the server (absolute, or relative to the login directory). */
  path: string;
  /** Absolute path of the private key (no passphrase: Kopia cannot prompt). */
  keyFile: string;
  /** Absolute path of a known_hosts file holding the server's host key. */
  knownHostsFile: string;
}

export interface WebdavBackend {
  kind: 'webdav';
  /** http(s)://host[:port]/path */
  url: string;
}

export interface RcloneBackend {
  kind: 'rclone';
  /** `remote:path` as rclone names it. */
  remotePath: string;
  /** The rclone executable (default: `rclone` on PATH). */
  rcloneExe?: string;
  /** Extra rclone arguments, e.g. `--config=/root/.config/rclone/rclone.conf`. */
  rcloneArgs?: string[];
  /** Seconds Kopia waits for `rclone serve` to start (Kopia's default 15; slow remotes need more). */
  startupTimeoutSeconds?: number;
}

export interface ServerBackend {
  kind: 'server';
  /** https://host:port of a Kopia repository server (plain http is refused by Kopia's client). */
  url: string;
  /** SHA-256 of the server's DER certificate: 64 hex digits (colons allowed, case ignored). */
  serverCertFingerprint: string;
}

export type BackendKind = RepositoryBackend['kind'];

export const BACKEND_KINDS: readonly BackendKind[] = [
  'filesystem',
  's3',
  'b2',
  'azure',
  'gcs',
  'sftp',
  'webdav',
  'rclone',
  'server',
];

/** Credentials; each goes only into the environment variable Kopia binds to the flag (see table). */
export interface BackendSecrets {
  s3AccessKeyId?: string;
  s3SecretAccessKey?: string;
  s3SessionToken?: string;
  b2KeyId?: string;
  b2Key?: string;
  azureStorageKey?: string;
  azureSasToken?: string;
  azureTenantId?: string;
  azureClientId?: string;
  azureClientSecret?: string;
  webdavUsername?: string;
  webdavPassword?: string;
}

/** An invalid backend description or missing credentials. Messages never contain secret values. */
export class BackendConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackendConfigError';
  }
}

export interface RepositoryArgs {
  /** What follows `kopia repository create|connect`: the provider word, then `--flag=value`s. */
  argv: string[];
  /** Environment for the kopia child: the credentials, under the names Kopia reads. */
  env: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------------
// Validation helpers

function bad(kind: BackendKind, what: string): never {
  throw new BackendConfigError(`${kind} repository: ${what}`);
}

/** A value that goes into argv: non-empty, one line, no NUL. */
function text(kind: BackendKind, name: string, v: string | undefined): string {
  if (v === undefined || v.trim() === '') bad(kind, `${name} is required`);
  // eslint-disable-next-line no-control-regex -- rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(v)) bad(kind, `${name} must not contain control characters`);
  return v;
}

function optText(kind: BackendKind, name: string, v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : text(kind, name, v);
}

function absPath(kind: BackendKind, name: string, v: string | undefined): string {
  const p = text(kind, name, v);
  if (!p.startsWith('/')) bad(kind, `${name} must be an absolute path (got "${p}")`);
  return p;
}

function secret(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

/** Lower-case 64-hex SHA-256 fingerprint, colons and spaces removed; throws when it is not one. */
export function normalizeFingerprint(fp: string): string {
  const hex = fp.replace(/[:\s]/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    bad('server', 'server_cert_fingerprint must be the SHA-256 of the certificate: 64 hex digits');
  }
  return hex;
}

function validUrl(kind: BackendKind, name: string, v: string, schemes: readonly string[]): URL {
  let u: URL;
  try {
    u = new URL(text(kind, name, v));
  } catch (e) {
    if (e instanceof BackendConfigError) throw e;
    // Not echoed: a malformed URL may still hold a password.
    bad(kind, `${name} is not a valid URL`);
  }
  // Credentials first, so that no message below ever echoes a URL that carries a password.
  if (u.username !== '' || u.password !== '') {
    bad(kind, `${name} must not carry credentials; give them as secrets (environment or a 0600 file)`);
  }
  if (!schemes.includes(u.protocol)) {
    bad(kind, `${name} must start with ${schemes.map((s) => `${s}//`).join(' or ')} (got "${v}")`);
  }
  return u;
}

function validEndpoint(v: string): string {
  const e = text('s3', 'endpoint', v);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(e)) {
    bad('s3', `endpoint is host[:port] without a scheme (got "${e}"); for plain http set disable_tls = true`);
  }
  if (e.includes('/')) bad('s3', `endpoint is host[:port] without a path (got "${e}")`);
  return e;
}

// ---------------------------------------------------------------------------------------------------
// argv + env

/** Can `kopia repository create` make a repository on this backend? (`server` is connect-only.) */
export function creatable(backend: RepositoryBackend): boolean {
  return backend.kind !== 'server';
}

/**
 * The Kopia argv (after `kopia repository create|connect`) and environment for `backend`.
 *
 * Follows `kopia repository connect <provider>` of Kopia 0.23.1 (the create flags are the same). The
 * common flags (`--config-file`, `--override-hostname`, `--cache-directory`, …) and `KOPIA_PASSWORD`
 * are the Kopia adapter's business and are not included.
 *
 * @throws BackendConfigError when a parameter is missing or malformed, or a required credential is
 *   absent (s3: access key id + secret; b2: key id + key; azure: a storage key, a SAS token, or
 *   tenant+client id+client secret). The message names the setting, never a secret's value.
 */
export function repositoryArgs(backend: RepositoryBackend, secrets: BackendSecrets = {}): RepositoryArgs {
  const env: Record<string, string> = {};
  const setEnv = (name: string, v: string | undefined): void => {
    const s = secret(v);
    if (s !== undefined) env[name] = s;
  };
  switch (backend.kind) {
    case 'filesystem':
      return { argv: ['filesystem', `--path=${absPath('filesystem', 'path', backend.path)}`], env };

    case 's3': {
      const bucket = text('s3', 'bucket', backend.bucket);
      // minio-go's (non-strict) bucket name rule, which Kopia's S3 client enforces before any request.
      if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{1,61}[A-Za-z0-9]$/.test(bucket)) {
        bad('s3', `bucket "${bucket}" is not a valid bucket name (3-63 letters, digits, '.', '-')`);
      }
      const argv = ['s3', `--bucket=${bucket}`];
      if (backend.endpoint !== undefined && backend.endpoint !== '') {
        argv.push(`--endpoint=${validEndpoint(backend.endpoint)}`);
      }
      const region = optText('s3', 'region', backend.region);
      if (region !== undefined) argv.push(`--region=${region}`);
      const prefix = optText('s3', 'prefix', backend.prefix);
      if (prefix !== undefined) argv.push(`--prefix=${prefix}`);
      if (backend.disableTls === true) argv.push('--disable-tls');
      if (backend.disableTlsVerification === true) argv.push('--disable-tls-verification');
      if (backend.rootCaPemPath !== undefined && backend.rootCaPemPath !== '') {
        argv.push(`--root-ca-pem-path=${absPath('s3', 'root_ca_pem_path', backend.rootCaPemPath)}`);
      }
      if (secret(secrets.s3AccessKeyId) === undefined || secret(secrets.s3SecretAccessKey) === undefined) {
        bad(
          's3',
          'needs an access key id and a secret access key (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)',
        );
      }
      setEnv('AWS_ACCESS_KEY_ID', secrets.s3AccessKeyId);
      setEnv('AWS_SECRET_ACCESS_KEY', secrets.s3SecretAccessKey);
      setEnv('AWS_SESSION_TOKEN', secrets.s3SessionToken);
      return { argv, env };
    }

    case 'b2': {
      const argv = ['b2', `--bucket=${text('b2', 'bucket', backend.bucket)}`];
      const prefix = optText('b2', 'prefix', backend.prefix);
      if (prefix !== undefined) argv.push(`--prefix=${prefix}`);
      if (secret(secrets.b2KeyId) === undefined || secret(secrets.b2Key) === undefined) {
        bad('b2', 'needs an application key id and key (B2_KEY_ID, B2_KEY)');
      }
      setEnv('B2_KEY_ID', secrets.b2KeyId);
      setEnv('B2_KEY', secrets.b2Key);
      return { argv, env };
    }

    case 'azure': {
      const argv = [
        'azure',
        `--container=${text('azure', 'container', backend.container)}`,
        `--storage-account=${text('azure', 'storage_account', backend.storageAccount)}`,
      ];
      const prefix = optText('azure', 'prefix', backend.prefix);
      if (prefix !== undefined) argv.push(`--prefix=${prefix}`);
      const domain = optText('azure', 'storage_domain', backend.storageDomain);
      if (domain !== undefined) argv.push(`--storage-domain=${domain}`);
      const principal =
        secret(secrets.azureTenantId) !== undefined &&
        secret(secrets.azureClientId) !== undefined &&
        secret(secrets.azureClientSecret) !== undefined;
      if (
        secret(secrets.azureStorageKey) === undefined &&
        secret(secrets.azureSasToken) === undefined &&
        !principal
      ) {
        bad(
          'azure',
          'needs a storage key (AZURE_STORAGE_KEY), a SAS token (AZURE_STORAGE_SAS_TOKEN), or a service ' +
            'principal (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET)',
        );
      }
      setEnv('AZURE_STORAGE_KEY', secrets.azureStorageKey);
      setEnv('AZURE_STORAGE_SAS_TOKEN', secrets.azureSasToken);
      if (principal) {
        setEnv('AZURE_TENANT_ID', secrets.azureTenantId);
        setEnv('AZURE_CLIENT_ID', secrets.azureClientId);
        setEnv('AZURE_CLIENT_SECRET', secrets.azureClientSecret);
      }
      return { argv, env };
    }

    case 'gcs': {
      const argv = ['gcs', `--bucket=${text('gcs', 'bucket', backend.bucket)}`];
      const prefix = optText('gcs', 'prefix', backend.prefix);
      if (prefix !== undefined) argv.push(`--prefix=${prefix}`);
      if (backend.credentialsFile !== undefined && backend.credentialsFile !== '') {
        argv.push(`--credentials-file=${absPath('gcs', 'credentials_file', backend.credentialsFile)}`);
      }
      if (backend.readOnly === true) argv.push('--read-only');
      return { argv, env };
    }

    case 'sftp': {
      const port = backend.port;
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        bad('sftp', `port must be an integer 1..65535 (got ${String(port)})`);
      }
      const argv = [
        'sftp',
        `--host=${text('sftp', 'host', backend.host)}`,
        `--port=${String(port)}`,
        `--username=${text('sftp', 'username', backend.username)}`,
        `--path=${text('sftp', 'path', backend.path)}`,
        `--keyfile=${absPath('sftp', 'key_file', backend.keyFile)}`,
        `--known-hosts=${absPath('sftp', 'known_hosts_file', backend.knownHostsFile)}`,
      ];
      return { argv, env };
    }

    case 'webdav': {
      validUrl('webdav', 'url', backend.url, ['http:', 'https:']);
      setEnv('KOPIA_WEBDAV_USERNAME', secrets.webdavUsername);
      setEnv('KOPIA_WEBDAV_PASSWORD', secrets.webdavPassword);
      return { argv: ['webdav', `--url=${backend.url}`], env };
    }

    case 'rclone': {
      const argv = ['rclone', `--remote-path=${text('rclone', 'remote_path', backend.remotePath)}`];
      if (!backend.remotePath.includes(':')) {
        bad('rclone', `remote_path must be remote:path as rclone names it (got "${backend.remotePath}")`);
      }
      const exe = optText('rclone', 'rclone_exe', backend.rcloneExe);
      if (exe !== undefined) argv.push(`--rclone-exe=${exe}`);
      for (const a of backend.rcloneArgs ?? [])
        argv.push(`--rclone-args=${text('rclone', 'rclone_args', a)}`);
      if (backend.startupTimeoutSeconds !== undefined) {
        const t = backend.startupTimeoutSeconds;
        if (!Number.isInteger(t) || t < 1)
          bad('rclone', `startup timeout must be whole seconds ≥ 1 (got ${t})`);
        argv.push(`--rclone-startup-timeout=${String(t)}s`);
      }
      return { argv, env };
    }

    case 'server': {
      validUrl('server', 'url', backend.url, ['https:']);
      return {
        argv: [
          'server',
          `--url=${backend.url}`,
          `--server-cert-fingerprint=${normalizeFingerprint(backend.serverCertFingerprint)}`,
        ],
        env,
      };
    }
  }
}

/** Names of the credential environment variables `repositoryArgs` would set (no values). */
export function credentialEnvNames(backend: RepositoryBackend, secrets: BackendSecrets): string[] {
  return Object.keys(repositoryArgs(backend, secrets).env).sort();
}

// ---------------------------------------------------------------------------------------------------
// Description and identity

function withPrefix(prefix: string | undefined): string {
  return prefix ? `/${prefix}` : '';
}

/** One line for doctor and logs, e.g. `s3 s3://bucket/prefix/ at minio:9000 (region eu-1, no TLS)`. No secrets. */
export function describeBackend(b: RepositoryBackend): string {
  switch (b.kind) {
    case 'filesystem':
      return `filesystem ${b.path}`;
    case 's3': {
      const notes = [
        b.region ? `region ${b.region}` : undefined,
        b.disableTls ? 'no TLS' : undefined,
        b.disableTlsVerification ? 'TLS not verified' : undefined,
      ].filter((x): x is string => x !== undefined);
      return (
        `s3 s3://${b.bucket}${withPrefix(b.prefix)} at ${b.endpoint || 's3.amazonaws.com'}` +
        (notes.length ? ` (${notes.join(', ')})` : '')
      );
    }
    case 'b2':
      return `b2 b2://${b.bucket}${withPrefix(b.prefix)}`;
    case 'azure':
      return `azure ${b.storageAccount}/${b.container}${withPrefix(b.prefix)}${b.storageDomain ? ` at ${b.storageDomain}` : ''}`;
    case 'gcs':
      return `gcs gs://${b.bucket}${withPrefix(b.prefix)}`;
    case 'sftp':
      return `sftp ${b.username}@${b.host}:${b.port}${b.path.startsWith('/') ? '' : ':'}${b.path}`;
    case 'webdav':
      return `webdav ${redactUrl(b.url)}`;
    case 'rclone':
      return `rclone ${b.remotePath}`;
    case 'server':
      return `kopia server ${redactUrl(b.url)}`;
  }
}

function redactUrl(u: string): string {
  try {
    const url = new URL(u);
    if (url.username || url.password) {
      url.username = '';
      url.password = '';
    }
    return url.toString();
  } catch {
    return u;
  }
}

/**
 * What makes two backends the same repository location: kind + the fields that pick the place
 * (path, bucket, endpoint, prefix, host/port/path, URL…). TLS and credential settings are not part of
 * it (they change how, not where). Pure string; compare with `===`.
 */
export function backendIdentity(b: RepositoryBackend): string {
  const norm = (p: string | undefined): string => (p ?? '').replace(/\/+$/, '');
  switch (b.kind) {
    case 'filesystem':
      return `filesystem:${norm(b.path)}`;
    case 's3':
      return `s3:${(b.endpoint || 's3.amazonaws.com').toLowerCase()}/${b.bucket}/${b.prefix ?? ''}`;
    case 'b2':
      return `b2:${b.bucket}/${b.prefix ?? ''}`;
    case 'azure':
      return `azure:${b.storageAccount}/${b.container}/${b.prefix ?? ''}`;
    case 'gcs':
      return `gcs:${b.bucket}/${b.prefix ?? ''}`;
    case 'sftp':
      return `sftp:${b.username}@${b.host.toLowerCase()}:${b.port}:${norm(b.path)}`;
    case 'webdav':
      return `webdav:${norm(b.url)}`;
    case 'rclone':
      return `rclone:${norm(b.remotePath)}`;
    case 'server':
      return `server:${norm(b.url)}`;
  }
}

/** Do `configured` and `connected` name the same repository location (see `backendIdentity`)? */
export function sameBackend(configured: RepositoryBackend, connected: RepositoryBackend): boolean {
  return backendIdentity(configured) === backendIdentity(connected);
}

// ---------------------------------------------------------------------------------------------------
// From Kopia's own view

function str(o: Record<string, unknown>, k: string): string | undefined {
  const v = o[k];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The backend a Kopia config is connected to, from `kopia repository status --json` (its `storage`:
 * `{type, config}` with Kopia's field names, secrets masked) — to compare with the configured one
 * (`sameBackend`) and reconnect or refuse on drift. Also accepts the Kopia config file's JSON (the
 * `repository.config`), whose `apiServer` names a repository-server connection, which the status JSON
 * does not show.
 *
 * @returns undefined when the JSON names no storage Kopia supports here (e.g. `gdrive`), or a server
 *   connection seen only through the status JSON (empty storage type).
 */
export function backendFromStatus(status: unknown): RepositoryBackend | undefined {
  if (!isRecord(status)) return undefined;
  const api = status.apiServer;
  if (isRecord(api)) {
    const url = str(api, 'url');
    if (url === undefined) return undefined;
    return { kind: 'server', url, serverCertFingerprint: str(api, 'serverCertFingerprint') ?? '' };
  }
  const storage = status.storage;
  if (!isRecord(storage)) return undefined;
  const type = str(storage, 'type');
  const c = isRecord(storage.config) ? storage.config : {};
  const prefix = str(c, 'prefix');
  const withP = <T extends object>(o: T): T & { prefix?: string } =>
    prefix === undefined ? o : { ...o, prefix };
  switch (type) {
    case 'filesystem': {
      const path = str(c, 'path');
      return path === undefined ? undefined : { kind: 'filesystem', path };
    }
    case 's3': {
      const bucket = str(c, 'bucket');
      if (bucket === undefined) return undefined;
      const b: S3Backend = withP({ kind: 's3' as const, bucket });
      const endpoint = str(c, 'endpoint');
      if (endpoint !== undefined) b.endpoint = endpoint;
      const region = str(c, 'region');
      if (region !== undefined) b.region = region;
      if (c.doNotUseTLS === true) b.disableTls = true;
      if (c.doNotVerifyTLS === true) b.disableTlsVerification = true;
      return b;
    }
    case 'b2': {
      const bucket = str(c, 'bucket');
      return bucket === undefined ? undefined : withP({ kind: 'b2' as const, bucket });
    }
    case 'azureBlob':
    case 'azure': {
      const container = str(c, 'container');
      if (container === undefined) return undefined;
      const b: AzureBackend = withP({
        kind: 'azure' as const,
        container,
        storageAccount: str(c, 'storageAccount') ?? '',
      });
      const domain = str(c, 'storageDomain');
      if (domain !== undefined) b.storageDomain = domain;
      return b;
    }
    case 'gcs': {
      const bucket = str(c, 'bucket');
      if (bucket === undefined) return undefined;
      const b: GcsBackend = withP({ kind: 'gcs' as const, bucket });
      const cf = str(c, 'credentialsFile');
      if (cf !== undefined) b.credentialsFile = cf;
      if (c.readOnly === true) b.readOnly = true;
      return b;
    }
    case 'sftp': {
      const host = str(c, 'host');
      const path = str(c, 'path');
      if (host === undefined || path === undefined) return undefined;
      return {
        kind: 'sftp',
        host,
        port: typeof c.port === 'number' ? c.port : 22,
        username: str(c, 'username') ?? '',
        path,
        keyFile: str(c, 'keyfile') ?? '',
        knownHostsFile: str(c, 'knownHostsFile') ?? '',
      };
    }
    case 'webdav': {
      const url = str(c, 'url');
      return url === undefined ? undefined : { kind: 'webdav', url };
    }
    case 'rclone': {
      const remotePath = str(c, 'remotePath');
      if (remotePath === undefined) return undefined;
      const b: RcloneBackend = { kind: 'rclone', remotePath };
      const exe = str(c, 'rcloneExe');
      if (exe !== undefined) b.rcloneExe = exe;
      return b;
    }
    default:
      return undefined;
  }
}

/** What `checkConnection` found. */
export type ConnectionCheck =
  /** Connected to the configured location. */
  | { state: 'same'; connected: RepositoryBackend }
  /** Connected somewhere else: reconnect (after a confirmation) or refuse — never write there. */
  | { state: 'different'; connected: RepositoryBackend; message: string }
  /** The JSON names no storage this module understands (e.g. gdrive, or a server seen via status). */
  | { state: 'unknown'; message: string };

/**
 * Compare the configured backend with what a Kopia config is connected to (`kopia repository status
 * --json`, or the Kopia config file's JSON for a repository-server connection). The v7.5.2 lesson of
 * the original: a changed backend must never leave backups going to the old repository silently.
 * Messages carry no secrets (`describeBackend`).
 */
export function checkConnection(configured: RepositoryBackend, statusOrConfig: unknown): ConnectionCheck {
  const connected = backendFromStatus(statusOrConfig);
  if (connected === undefined) {
    return {
      state: 'unknown',
      message: `cannot tell which repository the Kopia config is connected to (kopi-docka is configured for ${describeBackend(configured)})`,
    };
  }
  if (sameBackend(configured, connected)) return { state: 'same', connected };
  return {
    state: 'different',
    connected,
    message: `the Kopia config is connected to ${describeBackend(connected)}, but kopi-docka is configured for ${describeBackend(configured)}`,
  };
}

// ---------------------------------------------------------------------------------------------------
// (De)serialisation for the recovery bundle's kopia-repository.json

/**
 * Check an untrusted value (e.g. parsed kopia-repository.json) is a `RepositoryBackend` and return a
 * copy holding only the known fields. Runs `repositoryArgs`' parameter checks too (credentials aside).
 *
 * @throws BackendConfigError naming the first problem.
 */
export function parseBackend(v: unknown): RepositoryBackend {
  if (!isRecord(v)) throw new BackendConfigError('backend: expected an object');
  const kind = v.kind;
  if (typeof kind !== 'string' || !(BACKEND_KINDS as readonly string[]).includes(kind)) {
    throw new BackendConfigError(
      `backend: unknown kind ${JSON.stringify(kind)} (one of ${BACKEND_KINDS.join(', ')})`,
    );
  }
  const s = (k: string): string => (typeof v[k] === 'string' ? v[k] : '');
  const os = (k: string): string | undefined => (typeof v[k] === 'string' && v[k] !== '' ? v[k] : undefined);
  const ob = (k: string): boolean | undefined => (typeof v[k] === 'boolean' ? v[k] : undefined);
  const clean = <T extends object>(o: T): T =>
    Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as T;
  let b: RepositoryBackend;
  switch (kind as BackendKind) {
    case 'filesystem':
      b = { kind: 'filesystem', path: s('path') };
      break;
    case 's3':
      b = clean<S3Backend>({
        kind: 's3',
        bucket: s('bucket'),
        endpoint: os('endpoint'),
        region: os('region'),
        prefix: os('prefix'),
        disableTls: ob('disableTls'),
        disableTlsVerification: ob('disableTlsVerification'),
        rootCaPemPath: os('rootCaPemPath'),
      });
      break;
    case 'b2':
      b = clean<B2Backend>({ kind: 'b2', bucket: s('bucket'), prefix: os('prefix') });
      break;
    case 'azure':
      b = clean<AzureBackend>({
        kind: 'azure',
        container: s('container'),
        storageAccount: s('storageAccount'),
        prefix: os('prefix'),
        storageDomain: os('storageDomain'),
      });
      break;
    case 'gcs':
      b = clean<GcsBackend>({
        kind: 'gcs',
        bucket: s('bucket'),
        prefix: os('prefix'),
        credentialsFile: os('credentialsFile'),
        readOnly: ob('readOnly'),
      });
      break;
    case 'sftp':
      b = {
        kind: 'sftp',
        host: s('host'),
        port: typeof v.port === 'number' ? v.port : NaN,
        username: s('username'),
        path: s('path'),
        keyFile: s('keyFile'),
        knownHostsFile: s('knownHostsFile'),
      };
      break;
    case 'webdav':
      b = { kind: 'webdav', url: s('url') };
      break;
    case 'rclone': {
      const args = Array.isArray(v.rcloneArgs)
        ? v.rcloneArgs.filter((a): a is string => typeof a === 'string')
        : undefined;
      b = clean<RcloneBackend>({
        kind: 'rclone',
        remotePath: s('remotePath'),
        rcloneExe: os('rcloneExe'),
        rcloneArgs: args,
        startupTimeoutSeconds:
          typeof v.startupTimeoutSeconds === 'number' ? v.startupTimeoutSeconds : undefined,
      });
      break;
    }
    case 'server':
      b = { kind: 'server', url: s('url'), serverCertFingerprint: s('serverCertFingerprint') };
      break;
  }
  repositoryArgs(b, DUMMY_SECRETS);
  return b;
}

/** Placeholders that satisfy every credential check, for validating parameters alone. */
const DUMMY_SECRETS: BackendSecrets = {
  s3AccessKeyId: 'x',
  s3SecretAccessKey: 'x',
  b2KeyId: 'x',
  b2Key: 'x',
  azureStorageKey: 'x',
};

/**
 * The environment variable names a backend may need for credentials, for messages and recover.sh:
 * `required` must all be set; of `oneOf` at least one group must be set entirely.
 */
export function credentialRequirements(kind: BackendKind): {
  required: string[];
  oneOf: string[][];
  optional: string[];
} {
  switch (kind) {
    case 's3':
      return {
        required: ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'],
        oneOf: [],
        optional: ['AWS_SESSION_TOKEN'],
      };
    case 'b2':
      return { required: ['B2_KEY_ID', 'B2_KEY'], oneOf: [], optional: [] };
    case 'azure':
      return {
        required: [],
        oneOf: [
          ['AZURE_STORAGE_KEY'],
          ['AZURE_STORAGE_SAS_TOKEN'],
          ['AZURE_TENANT_ID', 'AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET'],
        ],
        optional: [],
      };
    case 'webdav':
      return { required: [], oneOf: [], optional: ['KOPIA_WEBDAV_USERNAME', 'KOPIA_WEBDAV_PASSWORD'] };
    default:
      return { required: [], oneOf: [], optional: [] };
  }
}
