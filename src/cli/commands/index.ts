/** One registry of commands: each module adds its own subcommand to the program. */
import type { Command } from '@commander-js/extra-typings';
import * as init from './init.js';
import * as check from './check.js';
import * as doctor from './doctor.js';
import * as list from './list.js';
import * as config from './config.js';
import * as backup from './backup.js';
import * as recover from './recover.js';
import * as restore from './restore.js';
import * as writeUnits from './write-units.js';
import * as notify from './notify.js';
import * as daemon from './daemon.js';
import * as disasterRecovery from './disaster-recovery.js';

export function registerCommands(program: Command): void {
  for (const m of [init, check, doctor, list, config, backup, recover, restore, writeUnits, notify, daemon])
    m.register(program);
  disasterRecovery.register(program);
}
