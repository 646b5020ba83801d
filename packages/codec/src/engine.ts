/**
 * The engine contract: what a conversion is asked (ConvertRequest), what it answers (ConvertResult)
 * and what an engine is. Types only, at the bottom of the codec: every engine and the dispatcher
 * import from here, and this file imports nothing of the codec's own, so no module can close a cycle
 * through it.
 */
import type { InputKind, OutputFormat } from '@kiln/formats';
import type { CodecLimits, EnginePaths, LimitSettings } from './limits.ts';

/** A resolved resize: what the engine should do, with the preset table already applied by the caller. */
export interface ResizeSpec {
  width?: number;
  height?: number;
  /** inside: fit within the box keeping aspect; cover: fill the box, centre crop. */
  fit: 'inside' | 'cover';
}

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

/** Facts about a written output, as engines report them. */
export interface OutputFacts {
  format: string;
  mimeType: string;
  size: number;
  width?: number;
  height?: number;
  frames?: number;
  durationSeconds?: number;
  appliedQuality: number | null;
  notes?: string[];
}

export interface ConvertResult extends OutputFacts {
  path: string;
}

export interface Engine {
  name: string;
  accepts(kind: InputKind, format: OutputFormat): boolean;
  run(req: ConvertRequest): Promise<ConvertResult>;
}

/**
 * The dispatcher's signature. Engines that convert other files on the way (the archive batch engine
 * converts each entry) are given it when the engine list is built, instead of importing the
 * dispatcher, which imports them.
 */
export type Convert = (req: ConvertRequest) => Promise<ConvertResult>;
