/**
 * Runs one vtracer trace in its own process: `node trace-child.ts <rgba> <width> <height> <config.json> <out.svg>`.
 * vtracer is native code on a libuv thread and cannot be interrupted; in a child process a trace
 * that runs past its deadline is killed with its process group instead of holding a worker thread.
 */
import fs from 'node:fs/promises';
import { vectorizeRaw, type Config } from '@neplex/vectorizer';

const [rawPath, w, h, configJson, outPath] = process.argv.slice(2);
if (!rawPath || !w || !h || !configJson || !outPath) {
  process.stderr.write('usage: trace-child <rgba> <width> <height> <config.json> <out.svg>\n');
  process.exit(2);
}
const raw = await fs.readFile(rawPath);
const svg = await vectorizeRaw(raw, { width: Number(w), height: Number(h) }, JSON.parse(configJson) as Config);
await fs.writeFile(outPath, svg);
