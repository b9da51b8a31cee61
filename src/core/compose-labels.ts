/**
 * The labels Docker Compose puts on the containers it creates, and how to read them. Compose v1 and v2
 * differ: v1 records config_files relative to working_dir and no depends_on label; v2 records absolute
 * paths, depends_on with conditions, and the --env-file(s) it was given.
 */
import path from 'node:path';
import { parseDependsOnConditions } from './compose-file.js';

export const LABEL_PROJECT = 'com.docker.compose.project';
export const LABEL_SERVICE = 'com.docker.compose.service';
export const LABEL_WORKING_DIR = 'com.docker.compose.project.working_dir';
export const LABEL_CONFIG_FILES = 'com.docker.compose.project.config_files';
export const LABEL_DEPENDS_ON = 'com.docker.compose.depends_on';
/**
 * v2 only, and only with `--env-file`: the env file(s) Compose interpolated with, comma-separated (some
 * versions write one label per file instead, suffixed `.0`, `.1`, …). Relative paths are relative to
 * where Compose ran, which no label records: they are taken as relative to the working dir.
 */
export const LABEL_ENVIRONMENT_FILE = 'com.docker.compose.project.environment_file';

/** `svc:condition:restart,other:condition` (v2 label) → service names. */
export function parseDependsOnLabel(value: string): string[] {
  return parseDependsOnConditions(value).map((d) => d.service);
}

/** The `--env-file`s a v2 container's labels record (see LABEL_ENVIRONMENT_FILE), as written. */
export function environmentFilesOf(labels: Record<string, string>): string[] {
  const suffix = (k: string) =>
    k.startsWith(LABEL_ENVIRONMENT_FILE) ? k.slice(LABEL_ENVIRONMENT_FILE.length) : '-';
  return Object.entries(labels)
    .filter(([k]) => /^(\.\d+)?$/.test(suffix(k)))
    .flatMap(([, v]) => v.split(','))
    .map((f) => f.trim())
    .filter((f) => f !== '');
}

/** Config file paths from the label: comma-separated, relative ones resolved against the working dir (v1). */
export function resolveConfigFiles(label: string | undefined, workingDir: string | undefined): string[] {
  if (label === undefined || label.trim() === '') return [];
  return [
    ...new Set(
      label
        .split(',')
        .map((f) => f.trim())
        .filter((f) => f !== '')
        .map((f) => (path.isAbsolute(f) || workingDir === undefined ? f : path.resolve(workingDir, f))),
    ),
  ];
}
