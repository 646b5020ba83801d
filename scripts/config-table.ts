/**
 * The README's configuration table, from the config schema itself: `node scripts/config-table.ts`
 * prints it; `--write` replaces the table under "## Configuration" in README.md, so the documented
 * defaults can never drift from the ones the code uses.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeConfig } from '@kiln/config';

const HEADER = '| variable | default | meaning |';
const table =
  [HEADER, '|---|---|---|', ...describeConfig().map((r) => `| \`${r.name}\` | ${r.default === '—' ? '—' : `\`${r.default}\``} | ${r.meaning.replace(/\|/g, '\\|')} |`)].join('\n') +
  '\n';

if (!process.argv.includes('--write')) {
  process.stdout.write(table);
} else {
  const readme = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'README.md');
  const lines = fs.readFileSync(readme, 'utf8').split('\n');
  const section = lines.findIndex((l) => l.startsWith('## Configuration'));
  const start = lines.findIndex((l, i) => i > section && l === HEADER);
  if (section < 0 || start < 0) throw new Error('README.md has no configuration table under "## Configuration".');
  let end = start;
  while (end < lines.length && lines[end]!.startsWith('|')) end++;
  lines.splice(start, end - start, ...table.trimEnd().split('\n'));
  fs.writeFileSync(readme, lines.join('\n'));
  process.stdout.write(`README.md: configuration table rewritten (${end - start - 2} → ${describeConfig().length} settings)\n`);
}
