/** A ConvertRequest with the defaults a worker would pass, for codec tests. */
import type { InputKind, OutputFormat } from '@kiln/formats';
import { DEFAULT_LIMITS, DEFAULT_LIMIT_SETTINGS, type ConvertRequest } from '../../src/index.ts';

export function request(input: string, inputKind: InputKind, format: OutputFormat, outputDir: string, extra: Partial<ConvertRequest> = {}): ConvertRequest {
  return {
    input,
    inputKind,
    outputDir,
    format,
    quality: 82,
    autoOrient: true,
    stripMetadata: true,
    lossless: false,
    mono: false,
    limits: { ...DEFAULT_LIMITS, ...(extra.limits ?? {}) },
    limitSettings: DEFAULT_LIMIT_SETTINGS,
    engines: {},
    animation: { maxFps: 15, maxWidth: 480 },
    avifEffort: 2,
    timeoutMs: 60_000,
    timeoutSetting: 'FILE_TIMEOUT_SECONDS',
    ...extra,
    ...(extra.limits ? { limits: { ...DEFAULT_LIMITS, ...extra.limits } } : {}),
  };
}
