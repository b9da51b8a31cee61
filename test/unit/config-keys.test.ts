/**
 * The key table (src/config/schema.ts) is the one declaration per key: these tests hold the docs,
 * `config show` and the loaded Config to it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { configView } from '../../src/cli/commands/config.js';
import { BLOCKS, extractBlock, renderKeyTables, updateDoc } from '../../src/config/doc.js';
import { loadConfig } from '../../src/config/load.js';
import { KEYS, LEGACY_KEYS, SCHEMA, SECTION_DOCS, findKey } from '../../src/config/schema.js';
import type { BackupSettings, Config, KopiaSettings, RetentionSettings } from '../../src/config/types.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SYSTEM = { cores: 2, availableMemoryBytes: 8 * 1024 ** 3, hostname: 'host' };

const roots: string[] = [];
after(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

async function load(text: string): Promise<Config> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kopi-docka-keys-'));
  roots.push(dir);
  const file = path.join(dir, 'c.conf');
  await writeFile(file, text, { mode: 0o600 });
  return loadConfig({
    explicitPath: file,
    searchPaths: [],
    system: SYSTEM,
    env: { KOPI_DOCKA_STATE_DIR: dir },
  });
}

void describe('docs/configuration.md', () => {
  void it('its generated blocks are what the key table renders (run scripts/config-doc.ts if not)', async () => {
    const doc = await readFile(path.join(repoRoot, 'docs/configuration.md'), 'utf8');
    for (const block of BLOCKS) {
      assert.equal(
        extractBlock(doc, block.name),
        block.render().trim(),
        `the ${block.name} block of docs/configuration.md is out of date: run node --import tsx scripts/config-doc.ts`,
      );
    }
    assert.equal(updateDoc(doc), doc);
  });

  void it('lists every key, its default and every alias of the table', () => {
    const tables = renderKeyTables();
    for (const def of KEYS) {
      assert.ok(tables.includes(`| \`${def.name}\` | ${def.type} | ${def.defaultDoc} |`), def.id);
      for (const alias of def.aliases) assert.ok(tables.includes(`\`${alias}\``), `${def.id} alias ${alias}`);
    }
    assert.match(
      tables,
      /\| `stall_timeout` \| integer ≥ 0 \(s\) \| `300` \| A Kopia or tar call that reports no progress/,
    );
  });

  void it('a doc edited by hand is detected and repaired by updateDoc', () => {
    const doc =
      '# x\n<!-- keys:begin -->\nstale\n<!-- keys:end -->\n<!-- legacy-keys:begin -->\n<!-- legacy-keys:end -->\n';
    assert.notEqual(extractBlock(doc, 'keys'), renderKeyTables());
    assert.equal(extractBlock(updateDoc(doc), 'keys'), renderKeyTables());
    assert.throws(() => updateDoc('# no markers\n'), /no <!-- keys:begin -->/);
  });
});

void describe('the key table', () => {
  void it('has one declaration per key: unique ids, no alias shadowing another key, documented sections', () => {
    const ids = KEYS.map((k) => k.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const def of KEYS) {
      assert.ok(def.doc.length > 0 && SECTION_DOCS[def.section].length > 0, def.id);
      for (const alias of def.aliases) {
        assert.equal(findKey(def.section, alias), def, `${def.section}.${alias}`);
        assert.ok(!(SCHEMA[def.section] ?? []).includes(alias), `alias ${alias} is also a key`);
      }
    }
    for (const legacy of LEGACY_KEYS) {
      assert.equal(findKey(legacy.section, legacy.name), undefined, `${legacy.section}.${legacy.name}`);
    }
  });

  void it('fills every field of Config, and config show prints every key', async () => {
    const cfg = await load('[kopia]\nrepository_path = /srv/k\npassword = x\n');
    // Typed as complete records: adding a field to types.ts without listing it here fails typecheck,
    // and the assertions below then fail until a key (or the loader) fills it.
    const fields: {
      kopia: Record<keyof KopiaSettings, true>;
      backup: Record<keyof BackupSettings, true>;
      retention: Record<keyof RetentionSettings, true>;
      logging: Record<keyof Config['logging'], true>;
    } = {
      kopia: {
        repositoryPath: true,
        backend: true,
        backendSecrets: true,
        credentialsFile: true,
        password: true,
        passwordFile: true,
        compression: true,
        encryption: true,
        cacheDirectory: true,
        kopiaConfigFile: true,
        hostname: true,
        username: true,
        binary: true,
      },
      backup: {
        backupBasePath: true,
        parallelWorkers: true,
        parallelWorkersAuto: true,
        stopTimeout: true,
        startTimeout: true,
        taskTimeout: true,
        stallTimeout: true,
        excludePatterns: true,
        volumeMode: true,
        tarDeterministicMtime: true,
        warmPass: true,
        updateRecoveryBundle: true,
        recoveryBundlePath: true,
        recoveryBundleRetention: true,
        preBackupHook: true,
        postBackupHook: true,
      },
      retention: { latest: true, hourly: true, daily: true, weekly: true, monthly: true, yearly: true },
      logging: { level: true },
    };
    for (const [section, names] of Object.entries(fields)) {
      const actual = Object.keys(cfg[section as keyof typeof fields]).sort();
      assert.deepEqual(actual, Object.keys(names).sort(), `Config.${section}`);
    }
    const optional = new Set(['passwordFile', 'credentialsFile', 'preBackupHook', 'postBackupHook']);
    for (const [section, names] of Object.entries(fields)) {
      const values = cfg[section as keyof typeof fields] as unknown as Record<string, unknown>;
      for (const name of Object.keys(names)) {
        if (!optional.has(name)) assert.notEqual(values[name], undefined, `Config.${section}.${name}`);
      }
    }
    const view = configView(cfg);
    assert.deepEqual(
      Object.entries(view.sections).flatMap(([s, keys]) => Object.keys(keys).map((k) => `${s}.${k}`)),
      KEYS.map((k) => k.id),
    );
    assert.deepEqual(view.sections.backup?.stall_timeout, { value: 300, origin: 'default' });
    assert.deepEqual(view.sections.backup?.task_timeout, { value: 0, origin: 'default' });
  });
});
