import fs from 'node:fs/promises';
import type { EmbeddedServer } from '@kiln/db';

export default async function globalTeardown(): Promise<void> {
  const pg = (globalThis as Record<string, unknown>).__KILN_PG__ as { server: EmbeddedServer; dir: string } | undefined;
  if (!pg) return;
  await pg.server.stop();
  await fs.rm(pg.dir, { recursive: true, force: true });
}
