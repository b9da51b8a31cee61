/** Plain data describing what discovery found on the Docker host. Produced by the Docker adapter. */

export type MountKind = 'volume' | 'bind' | 'tmpfs' | 'other';

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
}

export interface ContainerInfo {
  id: string;
  /** Name without the leading "/". */
  name: string;
  image: string;
  imageId: string;
  /** Docker state: running, exited, created, paused, restarting, dead. */
  state: string;
  running: boolean;
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
}
