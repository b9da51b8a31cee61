/**
 * Rewrites the generated blocks of docs/configuration.md (the key tables and the original's keys)
 * from the key table in src/config/schema.ts. Run after adding or changing a key:
 *
 *   node --import tsx scripts/config-doc.ts          # rewrite the doc
 *   node --import tsx scripts/config-doc.ts --check  # exit 1 if the doc is out of date
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { updateDoc } from '../src/config/doc.js';

const docPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../docs/configuration.md');

const before = await readFile(docPath, 'utf8');
const after = updateDoc(before);
if (process.argv.includes('--check')) {
  if (after !== before) {
    process.stderr.write(`${docPath} is out of date: run node --import tsx scripts/config-doc.ts\n`);
    process.exitCode = 1;
  }
} else if (after !== before) {
  await writeFile(docPath, after);
  process.stdout.write(`updated ${docPath}\n`);
} else {
  process.stdout.write(`${docPath} is up to date\n`);
}
