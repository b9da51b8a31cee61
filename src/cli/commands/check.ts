import type { Command } from '@commander-js/extra-typings';

export function register(_program: Command): void {
  // placeholder: the check command lands with its issue
}
