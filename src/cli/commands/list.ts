/** `kopi-docka list [--units] [--json]`: the units discovery finds on this host and what each contains. */
import type { Command } from '@commander-js/extra-typings';
import type { Unit, VolumeBacking } from '../../core/model.js';
import { classifyBind, type BindClassification, type BindContext } from '../../core/units.js';
import { discoverUnits } from '../../pipeline/discover.js';
import { createContext, exitState, globalsOf } from '../context.js';
import { table } from '../output.js';

export interface UnitListing {
  name: string;
  kind: Unit['kind'];
  containers: {
    name: string;
    service: string | null;
    state: string;
    running: boolean;
    image: string;
    hasHealthcheck: boolean;
    dependsOn: string[];
    volumes: {
      name: string | null;
      mountpoint: string;
      destination: string;
      driver: string | null;
      /** Made up by Docker for an unnamed mount: `compose up` after a restore will not reattach it. */
      anonymous: boolean;
      /**
       * Where the data lives (see VolumeBacking): `directory` (the mountpoint), `bind` (the host
       * directory `device`), `mount` (an nfs/cifs/device mount, only there while a container runs),
       * `tmpfs` (memory).
       */
      backing: VolumeBacking['kind'];
      /** The driver option `device` for `bind` and `mount` backings, else null. */
      device: string | null;
    }[];
    binds: { source: string; destination: string; classification: BindClassification }[];
  }[];
  composeWorkingDir: string | null;
  composeConfigFiles: string[];
  missingConfigFiles: string[];
}

/** The `--json` shape of one unit (absent values are null, so every key is always present). */
export function unitListing(u: Unit, ctx: BindContext): UnitListing {
  return {
    name: u.name,
    kind: u.kind,
    containers: u.containers.map((c) => ({
      name: c.name,
      service: c.composeService ?? null,
      state: c.state,
      running: c.running,
      image: c.image,
      hasHealthcheck: c.hasHealthcheck,
      dependsOn: c.dependsOn,
      volumes: c.mounts
        .filter((m) => m.kind === 'volume')
        .map((m) => ({
          name: m.name ?? null,
          mountpoint: m.source,
          destination: m.destination,
          driver: m.driver ?? null,
          anonymous: m.anonymous === true,
          backing: m.backing?.kind ?? 'directory',
          device: m.backing?.kind === 'bind' || m.backing?.kind === 'mount' ? m.backing.device : null,
        })),
      binds: c.mounts
        .filter((m) => m.kind === 'bind')
        .map((m) => ({
          source: m.source,
          destination: m.destination,
          classification: classifyBind(m.source, ctx),
        })),
    })),
    composeWorkingDir: u.composeWorkingDir ?? null,
    composeConfigFiles: u.composeConfigFiles,
    missingConfigFiles: u.missingConfigFiles,
  };
}

function unitRow(u: UnitListing): string[] {
  const running = u.containers.filter((c) => c.running).length;
  // A volume mounted by two containers of the unit is one data source.
  const volumes = new Set(u.containers.flatMap((c) => c.volumes.map((v) => v.name ?? v.mountpoint)));
  const binds = new Set(
    u.containers.flatMap((c) => c.binds.filter((b) => b.classification === 'data').map((b) => b.source)),
  );
  return [
    u.name,
    u.kind,
    `${running}/${u.containers.length}`,
    String(volumes.size),
    String(binds.size),
    u.composeConfigFiles[0] ?? '-',
  ];
}

export function register(program: Command): void {
  program
    .command('list')
    .description('list the backup units (Compose stacks and standalone containers) on this host')
    .option('--units', 'list units (the default)')
    .option('--json', 'print JSON')
    .action(async (opts, cmd) => {
      const ctx = createContext(globalsOf(cmd), opts.json);
      const cfg = await ctx.config();
      try {
        const found = await discoverUnits(ctx.docker(), { repositoryPath: cfg.kopia.repositoryPath });
        const bindCtx = { dockerRootDir: found.dockerRootDir, repositoryPath: cfg.kopia.repositoryPath };
        const units = found.units.map((u) => unitListing(u, bindCtx));
        if (ctx.out.json) {
          ctx.out.data({ units, warnings: found.warnings });
        } else {
          for (const w of found.warnings) ctx.log.warn(w);
          if (units.length === 0) ctx.out.line('no containers found');
          else
            ctx.out.line(
              table(['UNIT', 'KIND', 'RUNNING', 'VOLUMES', 'BINDS', 'COMPOSE FILE'], units.map(unitRow)),
            );
        }
      } finally {
        ctx.close();
      }
      exitState.code = 0;
    });
}
