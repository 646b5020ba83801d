/**
 * @kiln/formats — the format registry (output formats, input kinds, the conversion matrix) and
 * byte-level type detection. Pure data and functions: no native code, no I/O, so both the gateway
 * and the codec can depend on it.
 */
export * from './registry.ts';
export * from './sniff.ts';
export * from './media-types.ts';
