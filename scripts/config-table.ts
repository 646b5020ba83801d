/** Prints the README's configuration table from the config schema itself (`node scripts/config-table.ts`). */
import { describeConfig } from '@kiln/config';

const rows = describeConfig();
process.stdout.write('| variable | default | meaning |\n|---|---|---|\n');
for (const r of rows) process.stdout.write(`| \`${r.name}\` | ${r.default === '—' ? '—' : `\`${r.default}\``} | ${r.meaning.replace(/\|/g, '\\|')} |\n`);
