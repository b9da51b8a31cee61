/**
 * Where the Docker daemon listens. Only src/config/ reads the environment; the Docker adapter receives
 * this value as a constructor option.
 */
import { envValue } from './env.js';

/** The DOCKER_HOST value (`unix:///path` or `tcp://host:port`), or undefined for the default socket. */
export function dockerHostFromEnv(): string | undefined {
  return envValue('DOCKER_HOST');
}
