/**
 * @kiln/contracts — the public contract in code: request field parsing, the queue job catalog,
 * response shapes, the stored file result and the error-code catalog. Depends on zod and the format
 * registry only.
 */
export * from './errors.ts';
export * from './ids.ts';
export * from './job-fields.ts';
export * from './payloads.ts';
export * from './dto.ts';
export * from './file-result.ts';
export * from './resize-presets.ts';
export * from './key-limits.ts';
export * from './turbofiles.ts';
export * from './media-tools.ts';
export * from './response-schemas.ts';
export * from './webhooks.ts';
export * from './job-events.ts';
