/** Plain data describing what discovery found on the Docker host. Produced by the Docker adapter. */
import type { ServiceDependency, ServiceWithoutContainer } from './compose-file.js';

export type MountKind = 'volume' | 'bind' | 'tmpfs' | 'other';

/**
 * Where a `local`-driver volume's data really lives, from its driver options (`docker volume create
 * -o type=… -o o=… -o device=…`, Compose `driver_opts`). Docker mounts such a volume at its Mountpoint
 * only while a container uses it, so once the unit is stopped the Mountpoint is an empty directory.
 *  - `directory`: a plain volume; the data is in its Mountpoint (…/_data) at all times.
 *  - `bind`: `o` has `bind`/`rbind`: the data is the host directory `device`, at all times.
 *  - `mount`: a real filesystem mount (`type` nfs, nfs4, cifs, ext4 on a block device, …): the data
 *    is reachable only while Docker has it mounted. `device` as given (e.g. `:/export`, `//srv/share`).
 *  - `tmpfs`: `type` tmpfs: memory only, gone when the last container using it stops.
 */
export type VolumeBacking =
  | { kind: 'directory' }
  | { kind: 'bind'; device: string }
  | { kind: 'mount'; type: string; device: string }
  | { kind: 'tmpfs' };

/** A container joining another container's namespace (`--network/--pid/--ipc container:<id>`). */
export interface NamespaceJoin {
  namespace: 'network' | 'pid' | 'ipc';
  /** The other container as Docker records it: its full ID (Docker resolves names at create), or a name. */
  target: string;
}

export interface MountInfo {
  kind: MountKind;
  /** Volume name for volumes; undefined otherwise. */
  name: string | undefined;
  /** Host path: the volume's mountpoint (…/_data) or the bind source. */
  source: string;
  /** Path inside the container. */
  destination: string;
  readOnly: boolean;
  /** Volume driver ("local" …) for volumes. */
  driver: string | undefined;
  /**
   * Volumes only: Docker made it up for the container (`volumes: [/path]` in Compose, `-v /path`, an
   * image VOLUME nobody named): label `com.docker.volume.anonymous` (Engine 23+) or a 64-hex name.
   * `compose up` after a restore creates a new one instead of adopting it.
   */
  anonymous?: boolean | undefined;
  /** Volumes of the local driver only: where the data lives (see VolumeBacking). Undefined: directory. */
  backing?: VolumeBacking | undefined;
}

export interface ContainerInfo {
  id: string;
  /** Name without the leading "/". */
  name: string;
  image: string;
  imageId: string;
  /** Docker state: running, exited, created, paused, restarting, dead. */
  state: string;
  /** State.Running: true for paused and restarting containers too (see paused, restarting). */
  running: boolean;
  /** State.Paused: frozen by `docker pause`; a stop would SIGKILL it at the timeout. */
  paused?: boolean | undefined;
  /** State.Restarting: crash-looping under a restart policy, between two attempts. */
  restarting?: boolean | undefined;
  /** HostConfig.AutoRemove (`docker run --rm`): stopping it deletes it, so it is never stopped. */
  autoRemove?: boolean | undefined;
  /** Namespaces it shares with another container (HostConfig.NetworkMode/PidMode/IpcMode). */
  joins?: NamespaceJoin[] | undefined;
  hasHealthcheck: boolean;
  /** Seconds from Config.StopTimeout, when the container sets its own. */
  stopTimeout: number | undefined;
  labels: Record<string, string>;
  mounts: MountInfo[];
  /** Compose project / service, from com.docker.compose.* labels. */
  composeProject: string | undefined;
  composeService: string | undefined;
  /** Compose working dir and absolute config file paths (relative label paths resolved). */
  composeWorkingDir: string | undefined;
  composeConfigFiles: string[];
  /** Services this one depends on (compose label com.docker.compose.depends_on, else the compose file). */
  dependsOn: string[];
  /**
   * The same dependencies with their Compose condition (`service_healthy`,
   * `service_completed_successfully`, …); undefined when discovery did not fill it in (then every
   * dependency counts as `service_started`).
   */
  dependencies?: ServiceDependency[] | undefined;
  /** State.ExitCode: meaningful for an exited container (0 = it completed successfully). */
  exitCode?: number | undefined;
  /** The raw `docker inspect` document (unredacted: redact before storing). */
  inspect: Record<string, unknown>;
}

export type UnitKind = 'stack' | 'standalone';

export interface Unit {
  /** Unique unit name: project name, or container name (suffixed if it collides with a project). */
  name: string;
  kind: UnitKind;
  containers: ContainerInfo[];
  composeWorkingDir: string | undefined;
  composeConfigFiles: string[];
  /** Compose config files named by labels but missing on the host. */
  missingConfigFiles: string[];
  /**
   * Other files the project needs to come up again, absolute and existing: `include:`d Compose files,
   * `env_file:`s, `extends.file`s, env files of includes, and the `--env-file`s Compose v2 recorded
   * (label com.docker.compose.project.environment_file). Undefined/empty for standalone units.
   */
  composeReferencedFiles?: string[] | undefined;
  /** The `--env-file`s of the project (v2 label), absolute; a subset of composeReferencedFiles. */
  composeEnvironmentFiles?: string[] | undefined;
  /**
   * Services the Compose files declare that have no container (an inactive profile, scaled to 0, never
   * created): nothing of them can be backed up, which is reported, never silently dropped.
   */
  servicesWithoutContainers?: ServiceWithoutContainer[] | undefined;
}
