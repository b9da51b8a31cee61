import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { restoreCaveats } from '../../src/core/restore-warnings.js';

describe('restoreCaveats', () => {
  it('says nothing for a clean restore point, or one from before these fields existed', () => {
    assert.deepEqual(restoreCaveats({}), []);
    assert.deepEqual(restoreCaveats({ forceKilled: [], volumes: [], uncaptured: [] }), []);
  });

  it('names data the point does not hold, a force-killed application, anonymous and bind-type volumes', () => {
    const lines = restoreCaveats({
      uncaptured: [{ container: 'db', source: 'nfsdata', destination: '/srv', message: 'an nfs volume' }],
      forceKilled: ['stubborn'],
      volumes: [
        { name: 'a'.repeat(64), anonymous: true, usedBy: [{ container: 'app', destination: '/appdata' }] },
        {
          name: 'dbdata',
          anonymous: false,
          device: '/mnt/disk/db',
          usedBy: [{ container: 'db', destination: '/var/lib/db' }],
        },
        { name: 'plain', anonymous: false, usedBy: [{ container: 'app', destination: '/x' }] },
      ],
    });
    assert.equal(lines.length, 4, lines.join('\n'));
    assert.match(lines[0] ?? '', /nfsdata .*NOT in this restore point/);
    assert.match(lines[1] ?? '', /force-killed stubborn/);
    assert.match(lines[2] ?? '', /is anonymous \(app:\/appdata\).*compose up/);
    assert.match(lines[3] ?? '', /dbdata is a bind-type volume .*\/mnt\/disk\/db/);
  });
});
