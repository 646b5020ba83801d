/**
 * The codec's single entry for a conversion: picks the engine for (input kind, target format) from
 * an ordered list, using the shared format registry, so `GET /api/formats` and the codec can never
 * disagree. Each engine lives in its own module and says which pairs it takes.
 */
import { canConvert, type InputKind, type OutputFormat } from '@kiln/formats';
import { CodecError } from './errors.ts';
import type { OutputFacts } from './image/image.ts';
import type { ResizeSpec } from './image/resize.ts';
import type { CodecLimits, EnginePaths, LimitSettings } from './limits.ts';
import { ENGINES } from './engines.ts';

export interface ConvertRequest {
  input: string;
  inputKind: InputKind;
  /** Directory the output is written into (a scratch dir owned by the caller). */
  outputDir: string;
  /** The uploaded file's name, when known: names the entry when a file is wrapped into an archive. */
  filename?: string;
  format: OutputFormat;
  quality: number;
  resize?: ResizeSpec;
  autoOrient: boolean;
  stripMetadata: boolean;
  lossless: boolean;
  mono: boolean;
  limits: CodecLimits;
  limitSettings: LimitSettings;
  engines: EnginePaths;
  /** Caps for gif / animated webp made from video. */
  animation: { maxFps: number; maxWidth: number };
  avifEffort: number;
  /** One deadline for the whole conversion. */
  timeoutMs: number;
  /** The setting that changes timeoutMs, named in the timeout message. */
  timeoutSetting: string;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

export interface ConvertResult extends OutputFacts {
  path: string;
}

export interface Engine {
  name: string;
  accepts(kind: InputKind, format: OutputFormat): boolean;
  run(req: ConvertRequest): Promise<ConvertResult>;
}

export function pickEngine(kind: InputKind, format: OutputFormat): Engine | undefined {
  return ENGINES.find((e) => e.accepts(kind, format));
}

export async function convert(req: ConvertRequest): Promise<ConvertResult> {
  // The gateway refuses rar at submission; embedders calling the codec directly get the same sentence.
  if (req.format === 'rar') throw new CodecError('unsupported', 'RAR archives cannot be created with free software; choose zip or 7z.');
  const engine = canConvert(req.inputKind, req.format) ? pickEngine(req.inputKind, req.format) : undefined;
  if (!engine) throw new CodecError('unsupported', `Converting ${req.inputKind} to ${req.format} is not supported.`);
  if (req.signal?.aborted) throw new CodecError('cancelled', 'The conversion was cancelled.');
  return engine.run(req);
}
