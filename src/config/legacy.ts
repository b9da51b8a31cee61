/**
 * The original kopi-docka's keys that are not keys here: ignored with a warning, or refused with
 * what to write instead. Read by the loader (src/config/read.ts) and listed in the docs
 * (src/config/doc.ts).
 */

/**
 * Keys of the original kopi-docka (its INI README and template, and the JSON config of its later
 * versions) that kopi-docka does not use. `ignored`: accepted with a warning because they did
 * nothing in the original either, or nothing a user could observe; `refused`: an error, because
 * loading the file would silently mean something else.
 */
export interface LegacyKey {
  section: string;
  name: string;
  effect: 'ignored' | 'refused';
  /** Why, and what to write instead. */
  reason: string;
}

export const LEGACY_KEYS: readonly LegacyKey[] = [
  {
    section: 'kopia',
    name: 'profile',
    effect: 'ignored',
    reason:
      'kopi-docka keeps its own Kopia config file per repository_path, which is the isolation the profile gave',
  },
  {
    section: 'kopia',
    name: 'kopia_params',
    effect: 'refused',
    reason:
      'the Kopia argv is built from typed keys: set "backend = …" and its keys (docs/configuration.md), or "repository_path = /absolute/path" for a filesystem repository',
  },
  {
    section: 'kopia',
    name: 's3_endpoint',
    effect: 'refused',
    reason: 'write "backend = s3" and "endpoint = host:port" (no scheme) under [kopia] instead',
  },
  {
    section: 'kopia',
    name: 'cache_size_mb',
    effect: 'refused',
    reason: 'not supported (Kopia sizes its caches itself); remove the line',
  },
  {
    section: 'backup',
    name: 'database_backup',
    effect: 'ignored',
    reason:
      'databases are backed up cold, with their volumes (the original had removed its database dumps too)',
  },
  {
    section: 'backup',
    name: 'backup_scope',
    effect: 'ignored',
    reason: 'every backup includes the recipe and all data sources (the original never read this key either)',
  },
  {
    section: 'retention',
    name: 'annual',
    effect: 'refused',
    reason: 'it is called "yearly"',
  },
  {
    section: 'docker',
    name: 'socket',
    effect: 'ignored',
    reason: 'kopi-docka uses DOCKER_HOST, else /var/run/docker.sock (the original ignored this key too)',
  },
  {
    section: 'docker',
    name: 'compose_timeout',
    effect: 'ignored',
    reason: 'the original never read it; stop_timeout and start_timeout bound the containers',
  },
  {
    section: 'docker',
    name: 'prune_stopped_containers',
    effect: 'ignored',
    reason: 'kopi-docka never removes containers (the original never read this key)',
  },
  {
    section: 'notifications',
    name: 'enabled',
    effect: 'refused',
    reason:
      'a channel sends when its URL or SMTP server is set (webhook_url, ntfy_url, smtp_host, heartbeat_url); remove the line, and the channel keys to turn alerts off',
  },
  {
    section: 'logging',
    name: 'file',
    effect: 'ignored',
    reason:
      'kopi-docka logs to stderr (the journal under systemd); the original never opened its log file either',
  },
  {
    section: 'logging',
    name: 'max_size_mb',
    effect: 'ignored',
    reason: 'there is no log file to rotate (the original never read it)',
  },
  {
    section: 'logging',
    name: 'backup_count',
    effect: 'ignored',
    reason: 'there is no log file to rotate (the original never read it)',
  },
];

export function findLegacyKey(section: string, name: string): LegacyKey | undefined {
  return LEGACY_KEYS.find((k) => k.section === section && k.name === name);
}

/**
 * Sections of the original's later (JSON) configuration that have no counterpart here, with why.
 * Refused: a user who configured them expects something kopi-docka would not do.
 */
export const LEGACY_SECTIONS: Readonly<Record<string, string>> = {
  alerting:
    'the missed-backup alert is the heartbeat: set [notifications] heartbeat_url (healthchecks.io style, docs/scheduling.md); remove the section',
  credentials:
    'the repository is described by [kopia] backend and its keys (e.g. backend = sftp, sftp_host, sftp_key_file…), and cloud credentials come from the environment or [kopia] credentials_file (mode 600): see docs/configuration.md; remove the section',
};
