/** Errors that mean Postgres (or the network to it) is down or refusing, not that the query was wrong. */
const CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', '57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08006']);

export function isDatabaseUnavailable(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  if (code && CODES.has(code)) return true;
  // Over a unix socket a stopped server is a missing socket file: `connect ENOENT …/.s.PGSQL.5432`.
  if (code === 'ENOENT' && /\.s\.PGSQL\./.test(String((err as Error).message))) return true;
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|the database system is (shutting down|starting up)|Connection ended unexpectedly/i.test(
    String((err as Error | null)?.message ?? ''),
  );
}
