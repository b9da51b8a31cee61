import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BACKUP_SERVICE,
  DAEMON_SERVICE,
  TIMER,
  minimalPaths,
  quoteEnvironment,
  quoteExecArg,
  quotePath,
  renderUnits,
  UnitSpecError,
  type UnitSpec,
} from '../../src/core/systemd-units.js';

const SPEC: UnitSpec = {
  program: ['/usr/bin/node', '/opt/kopi-docka/dist/main.js'],
  configFile: '/srv/kd/kopi-docka.conf',
  writablePaths: [
    '/var/lib/kopi-docka',
    '/var/lib/kopi-docka/kopia',
    '/var/cache/kopi-docka',
    '/backup/repo',
    '/var/lib/kopi-docka/backups',
    '/run',
  ],
  environment: { KOPI_DOCKA_STATE_DIR: '/var/lib/kopi-docka' },
};

/** `Key=value` lines of one section of a rendered unit (comments and blanks dropped). */
function section(text: string, name: string): string[] {
  const out: string[] = [];
  let inside = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('[')) inside = line === `[${name}]`;
    else if (inside && line !== '' && !line.startsWith('#')) out.push(line);
  }
  return out;
}

function values(lines: string[], key: string): string[] {
  return lines.filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
}

function unit(name: string, spec: UnitSpec = SPEC): string {
  const u = renderUnits(spec).find((x) => x.name === name);
  assert.ok(u, name);
  return u.text;
}

describe('renderUnits', () => {
  it('renders the three units in a fixed order', () => {
    assert.deepEqual(
      renderUnits(SPEC).map((u) => u.name),
      [BACKUP_SERVICE, TIMER, DAEMON_SERVICE],
    );
  });

  it('backup service: oneshot, recover before backup, no start timeout, --config passed', () => {
    const s = section(unit(BACKUP_SERVICE), 'Service');
    assert.deepEqual(values(s, 'Type'), ['oneshot']);
    assert.deepEqual(values(s, 'ExecStartPre'), [
      '/usr/bin/node /opt/kopi-docka/dist/main.js --config /srv/kd/kopi-docka.conf recover',
    ]);
    assert.deepEqual(values(s, 'ExecStart'), [
      '/usr/bin/node /opt/kopi-docka/dist/main.js --config /srv/kd/kopi-docka.conf backup',
    ]);
    assert.deepEqual(values(s, 'TimeoutStartSec'), ['infinity']);
    assert.deepEqual(values(s, 'KillMode'), ['mixed']);
    assert.deepEqual(values(s, 'Environment'), ['"KOPI_DOCKA_STATE_DIR=/var/lib/kopi-docka"']);
  });

  it('no --config when none is given', () => {
    const s = section(unit(BACKUP_SERVICE, { ...SPEC, configFile: undefined }), 'Service');
    assert.deepEqual(values(s, 'ExecStart'), ['/usr/bin/node /opt/kopi-docka/dist/main.js backup']);
  });

  it('hardening keeps the capabilities that reading any volume needs and writes only the given paths', () => {
    for (const name of [BACKUP_SERVICE, DAEMON_SERVICE]) {
      const s = section(unit(name), 'Service');
      const caps = (values(s, 'CapabilityBoundingSet')[0] ?? '').split(' ');
      for (const c of [
        'CAP_DAC_READ_SEARCH',
        'CAP_DAC_OVERRIDE',
        'CAP_CHOWN',
        'CAP_FOWNER',
        'CAP_FSETID',
        'CAP_KILL',
      ]) {
        assert.ok(caps.includes(c), `${name} keeps ${c}`);
      }
      assert.ok(!caps.includes('CAP_SYS_ADMIN'), `${name} drops CAP_SYS_ADMIN`);
      assert.deepEqual(values(s, 'ProtectSystem'), ['strict']);
      assert.deepEqual(values(s, 'ProtectHome'), ['read-only'], 'bind mounts under /home stay readable');
      // Nested paths (state/kopia, state/backups) are covered by their parent.
      assert.deepEqual(values(s, 'ReadWritePaths'), [
        '/backup/repo /run /var/cache/kopi-docka /var/lib/kopi-docka',
      ]);
    }
  });

  it('timer: daily at 02:00, randomized, persistent, starts the oneshot (never the daemon)', () => {
    const t = section(unit(TIMER), 'Timer');
    assert.deepEqual(values(t, 'OnCalendar'), ['*-*-* 02:00:00']);
    assert.deepEqual(values(t, 'RandomizedDelaySec'), ['900']);
    assert.deepEqual(values(t, 'Persistent'), ['true']);
    assert.deepEqual(values(t, 'Unit'), [BACKUP_SERVICE]);
    assert.deepEqual(values(section(unit(TIMER), 'Install'), 'WantedBy'), ['timers.target']);
  });

  it('timer honours a custom calendar', () => {
    const t = section(unit(TIMER, { ...SPEC, onCalendar: 'Mon *-*-* 03:30' }), 'Timer');
    assert.deepEqual(values(t, 'OnCalendar'), ['Mon *-*-* 03:30']);
  });

  it('daemon: notify with watchdog, restart on failure with a start limit, conflicts with the timer', () => {
    const text = unit(DAEMON_SERVICE, { ...SPEC, watchdogSec: 60 });
    const s = section(text, 'Service');
    assert.deepEqual(values(s, 'Type'), ['notify']);
    assert.deepEqual(values(s, 'NotifyAccess'), ['all']);
    assert.deepEqual(values(s, 'WatchdogSec'), ['60']);
    assert.deepEqual(values(s, 'Restart'), ['on-failure']);
    assert.deepEqual(values(s, 'ExecStart'), [
      '/usr/bin/node /opt/kopi-docka/dist/main.js --config /srv/kd/kopi-docka.conf daemon',
    ]);
    const u = section(text, 'Unit');
    assert.deepEqual(values(u, 'Conflicts'), [TIMER]);
    assert.deepEqual(values(u, 'StartLimitBurst'), ['5']);
    assert.deepEqual(values(section(text, 'Install'), 'WantedBy'), ['multi-user.target']);
  });

  it('refuses relative paths, control characters and an empty program', () => {
    assert.throws(() => renderUnits({ ...SPEC, writablePaths: ['var/lib'] }), UnitSpecError);
    assert.throws(() => renderUnits({ ...SPEC, configFile: 'kd.conf' }), UnitSpecError);
    assert.throws(() => renderUnits({ ...SPEC, program: [] }), UnitSpecError);
    assert.throws(() => renderUnits({ ...SPEC, program: ['node'] }), UnitSpecError);
    assert.throws(
      () => renderUnits({ ...SPEC, configFile: '/etc/kd.conf\nExecStartPost=/bin/rm' }),
      /control character/,
    );
    assert.throws(() => renderUnits({ ...SPEC, onCalendar: 'daily\n[Service]' }), UnitSpecError);
    assert.throws(() => renderUnits({ ...SPEC, watchdogSec: 0 }), UnitSpecError);
  });
});

describe('quoting (systemd.service(5) command lines)', () => {
  it('leaves plain words alone', () => {
    assert.equal(quoteExecArg('/usr/bin/node'), '/usr/bin/node');
    assert.equal(quoteExecArg('--config'), '--config');
  });
  it('quotes spaces and escapes specifiers, variables, quotes and backslashes', () => {
    assert.equal(quoteExecArg('/opt/my kd/main.js'), '"/opt/my kd/main.js"');
    assert.equal(quoteExecArg('/opt/100%/x'), '"/opt/100%%/x"');
    assert.equal(quoteExecArg('/opt/$HOME/x'), '"/opt/$$HOME/x"');
    assert.equal(quoteExecArg('a"b\\c'), '"a\\"b\\\\c"');
    assert.equal(quoteExecArg(''), '""');
  });
  it('paths in lists: quoted when needed, % escaped, $ left alone', () => {
    assert.equal(quotePath('/srv/data'), '/srv/data');
    assert.equal(quotePath('/srv/my data/$x%'), '"/srv/my data/$x%%"');
  });
  it('environment assignments', () => {
    assert.equal(quoteEnvironment('DOCKER_HOST', 'unix:///run/d.sock'), '"DOCKER_HOST=unix:///run/d.sock"');
    assert.throws(() => quoteEnvironment('BAD NAME', 'x'), UnitSpecError);
  });
  it('minimalPaths drops duplicates and nested paths, normalizes', () => {
    assert.deepEqual(minimalPaths(['/a/b', '/a', '/a/', '/ab', '/c/./d/../e']), ['/a', '/ab', '/c/e']);
  });
});
