import { countApiKeys, createApiKey, ensureApiKey, type Pool } from '@kiln/db';
import type { Logger } from '@kiln/config';

/**
 * BOOTSTRAP_API_KEY makes sure that key exists (automation). A first start with no keys at all
 * creates one and prints it once — the only time it is ever shown.
 */
export async function bootstrapKeys(pool: Pool, bootstrapKey: string | undefined, log: Logger, print: (s: string) => void = (s) => process.stdout.write(s)): Promise<void> {
  if (bootstrapKey) {
    if (await ensureApiKey(pool, bootstrapKey)) log.info('created the API key given in BOOTSTRAP_API_KEY');
    return;
  }
  if ((await countApiKeys(pool)) > 0) return;
  const { key, row } = await createApiKey(pool, 'first key');
  print(`\n  No API keys existed, so Kiln created one. It is shown only this once — keep it:\n\n    ${key}\n\n` + `  (id ${row.id}; more with \`pnpm keys:create <name>\`)\n\n`);
}
