#!/usr/bin/env node
/** Parse → route → the single place that exits. */
import { Command, CommanderError } from '@commander-js/extra-typings';
import { VERSION } from './version.js';
import { ExitCode, KopiDockaError, SystemError, UsageError, errorMessage, isSystemError } from './errors.js';
import {
  createLogger,
  currentLogFormat,
  parseLogFormat,
  setLogFormat,
  stderrIsJournal,
} from './cli/logger.js';
import { exitState } from './cli/context.js';
import { registerCommands } from './cli/commands/index.js';

function buildProgram(): Command {
  const program = new Command()
    .name('kopi-docka')
    .description('Cold, consistent backups of Docker Compose stacks and containers into Kopia repositories')
    .version(VERSION, '-V, --version')
    .option(
      '-c, --config <path>',
      'config file (default: KOPI_DOCKA_CONFIG, /etc/kopi-docka.conf, ~/.config/kopi-docka/config.conf)',
    )
    .option('--log-level <level>', 'debug | info | warning | error')
    .option(
      '--log-format <format>',
      'text (default: time and level per line; <N> priorities when stderr is the journal) | json (one object per line)',
    )
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  // Before any command builds its logger: the format applies to every log line of the process.
  program.hook('preAction', (root) => {
    const given = root.opts().logFormat;
    if (given === undefined) return;
    const format = parseLogFormat(given);
    if (format === undefined) throw new UsageError(`invalid --log-format "${given}"`, 'use text or json');
    setLogFormat(format);
  });
  registerCommands(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return exitState.code;
  } catch (thrown) {
    if (thrown instanceof CommanderError) {
      // --help and --version end here with code 0; parse errors were already printed by commander.
      return thrown.exitCode === 0 ? 0 : ExitCode.USAGE;
    }
    // A filesystem/OS error no caller put words to is still the user's environment, not a bug.
    const err = isSystemError(thrown) ? new SystemError(thrown) : thrown;
    if (err instanceof KopiDockaError) {
      if (currentLogFormat() === 'json') {
        // Log shippers get the error as one more JSON line (the hint in the same event).
        createLogger('error').error(err.hint ? `${err.message} (hint: ${err.hint})` : err.message);
      } else {
        // In the journal, at error priority (sd-daemon(3)); elsewhere as it always was.
        const p = stderrIsJournal() ? '<3>' : '';
        process.stderr.write(`${p}error: ${err.message}\n`);
        if (err.hint) process.stderr.write(`${p}hint: ${err.hint}\n`);
      }
      return err.exitCode;
    }
    process.stderr.write(`internal error: ${errorMessage(err)}\n`);
    if (err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return ExitCode.FAILURE;
  }
}

main(process.argv).then(
  (code) => {
    // stdout/stderr are synchronous for files and pipes on Linux, so nothing written is lost here.
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`fatal: ${errorMessage(err)}\n`);
    process.exit(ExitCode.FAILURE);
  },
);
