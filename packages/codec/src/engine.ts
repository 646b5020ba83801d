/**
 * The engine contract: what a conversion is asked (ConvertRequest), what it answers (ConvertResult)
 * and what an engine is. Types only, at the bottom of the codec: every engine and the dispatcher
 * import from here, and this file imports nothing of the codec's own, so no module can close a cycle
 * through it.
 */
import type { InputKind, OutputFormat } from '@kiln/formats';

/**
 * One limit: its value and the setting that changes it, carried together from configuration to the
 * message that names it. `max` is in the setting's own unit (pixels, seconds, bytes, pages…).
 */
export interface Limit {
  max: number;
  setting: string;
}

/** Every limit the codec enforces. The caller builds them (the worker, from config); engines pass them on untouched. */
export interface Limits {
  /** Largest decoded raster image: width × height × frames. */
  pixels: Limit;
  /** Longest audio/video input, in seconds. */
  durationSeconds: Limit;
  /** Largest video frame (width × height), input and planned output. */
  videoPixels: Limit;
  /** Most streams one media input may carry. */
  streams: Limit;
  /** Most entries one archive may hold. */
  archiveEntries: Limit;
  /** Largest total size of an archive's contents once expanded, in bytes. */
  expandedBytes: Limit;
  /** Largest ratio of expanded size to archive size (zip-bomb guard). */
  expansionRatio: Limit;
  /** Largest image traced to SVG, in pixels (it is downscaled to this first). */
  tracePixels: Limit;
  /** Most pages read from a PDF. */
  pdfPages: Limit;
  /** Highest density (DPI) used to rasterise SVG input. */
  svgDensity: Limit;
}

/** Paths configured for external engines; unset means "resolve the bundled one". */
export interface EnginePaths {
  ffmpegPath?: string;
  ffprobePath?: string;
  sevenZipPath?: string;
  /** libheif's heif-enc, for real HEVC HEIC output when installed. */
  heifEncPath?: string;
}

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
  limits: Limits;
  engines: EnginePaths;
  /** Caps for gif / animated webp made from video. */
  animation: { maxFps: number; maxWidth: number };
  avifEffort: number;
  /** One deadline for the whole conversion, every step and child process included; `max` in seconds. */
  timeout: Limit;
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
  /** The engine that wrote it (Engine.name), as the dispatcher picked it. */
  engine?: string;
}

/**
 * The time one call may take, made from its timeout Limit when the call starts (deadline.ts). Every
 * step of the call asks it what is left, so all steps share one budget and one message.
 */
export interface Deadline {
  /** What it was made from; `max` in seconds. */
  readonly limit: Limit;
  /** Milliseconds left; throws the timeout error (naming the setting) when none are. */
  left(): number;
  /** The one timeout error of this call (a CodecError of kind `timeout`); `advice` adds what else would help. */
  error(opts?: { cause?: unknown; advice?: string }): Error;
  /** Runs `fn`, re-throwing a timeout from inside it (a child process's own) as this call's. */
  wrap<T>(fn: () => Promise<T>, advice?: string): Promise<T>;
}

export interface Engine {
  name: string;
  accepts(kind: InputKind, format: OutputFormat): boolean;
  run(req: ConvertRequest, deadline: Deadline): Promise<ConvertResult>;
  /**
   * Only for an engine that writes nothing but its output file: the same conversion, written at
   * `output`, a path the caller chose (convertToFile). The caller then needs no folder for it.
   */
  runToFile?(req: FileConvertRequest, output: string, deadline: Deadline): Promise<ConvertResult>;
}

/** A conversion written at a path of the caller's (convertToFile): no folder is given, none is written in. */
export type FileConvertRequest = Omit<ConvertRequest, 'outputDir'>;

/**
 * The dispatcher's signature. Engines that convert other files on the way (the archive batch engine
 * converts each entry) are given it when the engine list is built, instead of importing the
 * dispatcher, which imports them; they pass their own deadline on.
 */
export type Convert = (req: ConvertRequest, deadline?: Deadline) => Promise<ConvertResult>;
