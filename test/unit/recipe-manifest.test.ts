import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRecipeManifest, RECIPE_MANIFEST_FORMAT } from '../../src/core/recipe-manifest.js';
import { KopiDockaError } from '../../src/errors.js';

const manifest = {
  format: RECIPE_MANIFEST_FORMAT,
  tool: { name: 'kopi-docka', version: '0.1.0' },
  unit: 'web',
  kind: 'stack',
  backupId: '2026-11-30T18-00-00Z',
  host: 'h',
  user: 'u',
  createdAt: '2026-11-30T18:00:00.000Z',
  volumeMode: 'direct',
  compose: { workingDir: '/srv/web', configFiles: ['/srv/web/compose.yaml'], files: [], missing: [] },
  containers: [],
  snapshots: [
    {
      key: 'volume:web_db',
      type: 'volume',
      name: 'web_db',
      hostPath: '/var/lib/docker/volumes/web_db/_data',
      kopiaPath: '/volumes/web/web_db',
      snapshotId: 'k123',
      format: 'dir',
      isFile: false,
      sizeBytes: 10,
      files: 1,
      usedBy: [{ container: 'db', destination: '/data', readOnly: false }],
    },
  ],
  coverage: [],
  warnings: [],
};

test('a manifest as the backup writes it reads back, older optional fields absent', () => {
  const m = parseRecipeManifest(JSON.stringify({ ...manifest, futureField: 1 }), 'manifest.json');
  assert.equal(m.unit, 'web');
  assert.equal(m.snapshots[0]?.snapshotId, 'k123');
  assert.equal(m.stops, undefined);
});

test('a damaged manifest is refused with the field that is wrong, not half-read', () => {
  const broken = { ...manifest, snapshots: [{ ...manifest.snapshots[0], snapshotId: 42 }] };
  assert.throws(
    () => parseRecipeManifest(JSON.stringify(broken), 'manifest.json of k1'),
    (e: unknown) =>
      e instanceof KopiDockaError &&
      /manifest\.json of k1/.test(e.message) &&
      /snapshots\.0\.snapshotId/.test(e.message),
  );
  assert.throws(() => parseRecipeManifest('{"format": 1', 'm.json'), /not valid JSON/);
});

test('a manifest from a newer format says which kopi-docka to use', () => {
  assert.throws(
    () => parseRecipeManifest(JSON.stringify({ ...manifest, format: RECIPE_MANIFEST_FORMAT + 1 }), 'm.json'),
    (e: unknown) => e instanceof KopiDockaError && /format 2/.test(e.message) && /newer/.test(e.hint ?? ''),
  );
});
