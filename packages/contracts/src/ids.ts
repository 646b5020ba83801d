/**
 * Ids Kiln hands out (jobs, files, keys) are UUIDs. A path or query value is checked against this one
 * pattern before it reaches a query: anything else is simply "not found", never a Postgres cast error.
 */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const isUuid = (value: unknown): value is string => typeof value === 'string' && UUID_PATTERN.test(value);
