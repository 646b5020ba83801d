/**
 * Parsing of the Convertly multipart fields (API.md §2.1) into one options object per uploaded file.
 * Every field comes as a string. A field is either one singular value for the whole batch, or a JSON
 * array (its plural name) with exactly one entry per file. Errors name the field, the file index and
 * the accepted values; nothing is queued when any field is wrong.
 */
import { z } from 'zod';
import { FORMAT_ALIASES, OUTPUT_FORMATS, parseOutputFormat, type OutputFormat } from '@kiln/formats';
import { AppError } from './errors.ts';

export const RESIZE_PRESETS = ['original', 'website', 'email', 'instagram', 'linkedin', 'ecommerce', 'square', 'width', 'height'] as const;
export type ResizePreset = (typeof RESIZE_PRESETS)[number];
/**
 * What a file's stored options may say: the presets, plus `box` (fit inside resizeWidth ×
 * resizeHeight), which the TurboFiles dialect's resize settings need and the Convertly `resize` field
 * does not offer. Workers of a version without it fail such a file as invalid options, never guess.
 */
export const RESIZE_MODES = [...RESIZE_PRESETS, 'box'] as const;
export type ResizeMode = (typeof RESIZE_MODES)[number];
export const COMPRESS_MODES = ['quality', 'target-size'] as const;
export type CompressMode = (typeof COMPRESS_MODES)[number];
export const JOB_TYPES = ['convert', 'compress'] as const;
export type JobType = (typeof JOB_TYPES)[number];
/**
 * The API a job came in through, recorded on the job (jobs.dialect) for metrics by dialect. Convertly's
 * multipart `/api/*` and TurboFiles' JSON:API `/v1/*`; a new dialect is one more entry here, passed to submitJob.
 */
export const DIALECTS = ['convertly', 'turbofiles'] as const;
export type Dialect = (typeof DIALECTS)[number];

export const DEFAULT_QUALITY = 82;

export const fileOptionsSchema = z.object({
  format: z.enum(OUTPUT_FORMATS).optional(),
  resize: z.enum(RESIZE_MODES),
  resizeWidth: z.number().int().min(1).nullable(),
  resizeHeight: z.number().int().min(1).nullable(),
  quality: z.number().int().min(1).max(100),
  autoOrient: z.boolean(),
  mono: z.boolean(),
  mode: z.enum(COMPRESS_MODES),
  targetBytes: z.number().int().min(1).nullable(),
  lossless: z.boolean(),
  stripMetadata: z.boolean(),
});
export type FileOptions = z.infer<typeof fileOptionsSchema>;

export interface JobRequest {
  jobType: JobType;
  createArchive: boolean;
  /** null when the client did not say; async jobs always store, sync calls default to inline results. */
  saveToStorage: boolean | null;
  files: FileOptions[];
}

type Raw = Record<string, unknown>;

/** Parses one value; returns the parsed value or an error sentence fragment naming what is accepted. */
type ValueParser<T> = (v: unknown) => { ok: true; value: T } | { ok: false; accepted: string };

const boolParser: ValueParser<boolean> = (v) => {
  if (v === true || v === 'true') return { ok: true, value: true };
  if (v === false || v === 'false') return { ok: true, value: false };
  return { ok: false, accepted: '"true" or "false"' };
};
const intParser =
  (min: number, max?: number, nullable = false): ValueParser<number | null> =>
  (v) => {
    const accepted = `an integer ${max === undefined ? `≥ ${min}` : `from ${min} to ${max}`}${nullable ? ' or null' : ''}`;
    if (v === null || v === 'null' || v === '') return nullable ? { ok: true, value: null } : { ok: false, accepted };
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < min || (max !== undefined && n > max)) return { ok: false, accepted };
    return { ok: true, value: n };
  };
const enumParser =
  <T extends string>(values: readonly T[]): ValueParser<T> =>
  (v) =>
    typeof v === 'string' && (values as readonly string[]).includes(v) ? { ok: true, value: v as T } : { ok: false, accepted: `one of ${values.join(', ')}` };
const formatParser: ValueParser<OutputFormat> = (v) => {
  const f = typeof v === 'string' ? parseOutputFormat(v) : undefined;
  return f ? { ok: true, value: f } : { ok: false, accepted: `one of ${OUTPUT_FORMATS.join(', ')} (jpeg is an alias of jpg)` };
};

interface FieldSpec<T> {
  key: keyof FileOptions;
  singular: readonly string[];
  plural: string;
  parse: ValueParser<T>;
  /** What the singular field accepts, for the OpenAPI document (the parser above is what decides). */
  doc: z.ZodType;
  /** Only compress jobs read it. */
  compressOnly?: boolean;
}

const boolDoc = (dflt: boolean, what: string) =>
  z
    .enum(['true', 'false'])
    .default(dflt ? 'true' : 'false')
    .describe(what);
const intDoc = (min: number, max: number | undefined, what: string) => {
  const n = z.int().min(min);
  return (max === undefined ? n : n.max(max)).describe(what);
};

const FIELDS: FieldSpec<unknown>[] = [
  {
    key: 'format',
    singular: ['format'],
    plural: 'formats',
    parse: formatParser,
    doc: z.enum([...OUTPUT_FORMATS, ...Object.keys(FORMAT_ALIASES)]).describe(
      `Output format (${Object.entries(FORMAT_ALIASES)
        .map(([a, f]) => `${a} = ${f}`)
        .join(', ')}). Required for convert jobs unless formats is sent.`,
    ),
  },
  {
    key: 'resize',
    singular: ['resize'],
    plural: 'resizes',
    parse: enumParser(RESIZE_PRESETS),
    doc: z.enum(RESIZE_PRESETS).default('original').describe('Resize preset; never upscales.'),
  },
  {
    key: 'resizeWidth',
    singular: ['resizeWidth'],
    plural: 'resizeWidths',
    parse: intParser(1, undefined, true),
    doc: intDoc(1, undefined, 'Width in pixels for resize=width and square (or "null").'),
  },
  {
    key: 'resizeHeight',
    singular: ['resizeHeight'],
    plural: 'resizeHeights',
    parse: intParser(1, undefined, true),
    doc: intDoc(1, undefined, 'Height in pixels for resize=height (or "null").'),
  },
  {
    key: 'quality',
    singular: ['compression', 'quality'],
    plural: 'compressions',
    parse: intParser(1, 100),
    doc: intDoc(1, 100, 'Quality to aim for, reported back as appliedQuality.').default(DEFAULT_QUALITY),
  },
  { key: 'autoOrient', singular: ['autoOrient'], plural: 'autoOrients', parse: boolParser, doc: boolDoc(true, 'Apply EXIF orientation before anything else.') },
  { key: 'mono', singular: ['mono'], plural: 'monos', parse: boolParser, doc: boolDoc(false, 'SVG output: trace one colour instead of colour layers.') },
  {
    key: 'mode',
    singular: ['mode'],
    plural: 'modes',
    parse: enumParser(COMPRESS_MODES),
    doc: z.enum(COMPRESS_MODES).default('quality').describe('Compress: encode at a quality, or search for targetBytes.'),
    compressOnly: true,
  },
  {
    key: 'targetBytes',
    singular: ['targetBytes'],
    plural: 'targetByteValues',
    parse: intParser(1, undefined, true),
    doc: intDoc(1, undefined, 'Compress, mode=target-size: the size to stay at or under.'),
    compressOnly: true,
  },
  { key: 'lossless', singular: ['lossless'], plural: 'losslessValues', parse: boolParser, doc: boolDoc(false, 'Compress: no pixel changes.'), compressOnly: true },
  {
    key: 'stripMetadata',
    singular: ['stripMetadata'],
    plural: 'stripMetadataValues',
    parse: boolParser,
    doc: boolDoc(true, 'Compress: drop EXIF/GPS/XMP (ICC colour is kept, converted to sRGB).'),
    compressOnly: true,
  },
];

const DEFAULTS: Omit<FileOptions, 'format'> = {
  resize: 'original',
  resizeWidth: null,
  resizeHeight: null,
  quality: DEFAULT_QUALITY,
  autoOrient: true,
  mono: false,
  mode: 'quality',
  targetBytes: null,
  lossless: false,
  stripMetadata: true,
};

/**
 * One file's options from the parts a caller decides, every other one at its default, checked by the
 * same schema a worker reads them back with. For ways in that do not speak the multipart fields.
 */
export function fileOptionsFor(chosen: Partial<FileOptions>): FileOptions {
  return fileOptionsSchema.parse({ ...DEFAULTS, ...chosen });
}

function invalid(field: string, message: string, detail: Record<string, unknown>): AppError {
  return new AppError('invalid_field', message, { detail: { field, ...detail } });
}

/** A multipart field that was sent more than once arrives as an array; the last one wins. */
function single(raw: Raw, name: string): string | undefined {
  const v = raw[name];
  if (Array.isArray(v)) return v.length ? String(v[v.length - 1]) : undefined;
  return v === undefined ? undefined : String(v);
}

function parseTopBool<D extends boolean | null>(raw: Raw, name: string, dflt: D): boolean | D {
  const v = single(raw, name);
  if (v === undefined || v === '') return dflt;
  const r = boolParser(v);
  if (!r.ok) throw invalid(name, `${name} must be "true" or "false"; got ${JSON.stringify(v)}.`, { accepted: ['true', 'false'] });
  return r.value;
}

export function parseJobFields(raw: Raw, fileCount: number, forced?: { jobType?: JobType }): JobRequest {
  const jobTypeRaw = forced?.jobType ?? single(raw, 'jobType') ?? 'convert';
  const jt = enumParser(JOB_TYPES)(jobTypeRaw);
  if (!jt.ok) throw invalid('jobType', `jobType must be one of ${JOB_TYPES.join(', ')}; got ${JSON.stringify(jobTypeRaw)}.`, { accepted: JOB_TYPES });
  const jobType = jt.value;

  const perFile: Partial<FileOptions>[] = Array.from({ length: fileCount }, () => ({}));
  for (const spec of FIELDS) {
    const pluralRaw = single(raw, spec.plural);
    if (pluralRaw !== undefined && pluralRaw !== '') {
      let arr: unknown;
      try {
        arr = JSON.parse(pluralRaw);
      } catch {
        throw invalid(spec.plural, `${spec.plural} must be a JSON array with one entry per file; it is not valid JSON.`, { expectedLength: fileCount });
      }
      if (!Array.isArray(arr)) throw invalid(spec.plural, `${spec.plural} must be a JSON array with one entry per file.`, { expectedLength: fileCount });
      if (arr.length !== fileCount)
        throw invalid(spec.plural, `${spec.plural} has ${arr.length} entries but ${fileCount} file(s) were uploaded; send exactly one entry per file.`, {
          expectedLength: fileCount,
          actualLength: arr.length,
        });
      arr.forEach((v, i) => {
        const r = spec.parse(v);
        if (!r.ok) throw invalid(spec.plural, `${spec.plural}[${i}] must be ${r.accepted}; got ${JSON.stringify(v)}.`, { index: i, accepted: r.accepted });
        (perFile[i] as Record<string, unknown>)[spec.key] = r.value;
      });
      continue;
    }
    for (const name of spec.singular) {
      const v = single(raw, name);
      if (v === undefined || v === '') continue;
      const r = spec.parse(v);
      if (!r.ok) throw invalid(name, `${name} must be ${r.accepted}; got ${JSON.stringify(v)}.`, { accepted: r.accepted });
      for (const f of perFile) (f as Record<string, unknown>)[spec.key] = r.value;
      break;
    }
  }

  const files = perFile.map((p, i): FileOptions => {
    const o = { ...DEFAULTS, ...p } as FileOptions;
    const where = fileCount > 1 ? ` (file ${i})` : '';
    if (jobType === 'convert' && !o.format)
      throw invalid('format', `format is required${where}: send format=<${OUTPUT_FORMATS.slice(0, 6).join('|')}|…> or formats=[…] with one entry per file.`, { index: i });
    if (o.resize === 'width' && o.resizeWidth === null) throw invalid('resizeWidth', `resize=width needs resizeWidth${where}: send resizeWidth=<pixels>.`, { index: i });
    if (o.resize === 'height' && o.resizeHeight === null) throw invalid('resizeHeight', `resize=height needs resizeHeight${where}: send resizeHeight=<pixels>.`, { index: i });
    if (jobType === 'compress' && o.mode === 'target-size' && o.targetBytes === null)
      throw invalid('targetBytes', `mode=target-size needs targetBytes${where}: send targetBytes=<bytes> or targetByteValues=[…].`, { index: i });
    return fileOptionsSchema.parse(o);
  });

  return {
    jobType,
    createArchive: parseTopBool(raw, 'createArchive', false),
    saveToStorage: parseTopBool(raw, 'saveToStorage', null),
    files,
  };
}

/** Where a multipart form is sent: the job route reads every field, the sync routes their own. */
export type JobFormRoute = 'jobs' | 'convert' | 'compress';

/**
 * The multipart form of POST /api/jobs, /api/convert and /api/compress as a zod object, for the
 * OpenAPI document: built from the same field table parseJobFields reads (singular names, the
 * plural JSON-array names, defaults), plus the file parts and the job-level fields. Documentation
 * only — every value arrives as a string and parseJobFields decides.
 */
export function jobFormSchema(route: JobFormRoute): z.ZodObject {
  const shape: Record<string, z.ZodType> = {
    files: z
      .array(z.string().meta({ format: 'binary' }))
      .optional()
      .describe('One or more file parts (also accepted as files[0], files[1]… and files.items). Types are detected from the bytes, never from names.'),
  };
  for (const f of FIELDS) {
    if (f.compressOnly && route === 'convert') continue;
    for (const name of f.singular) shape[name] = f.doc.optional();
    shape[f.plural] = z
      .string()
      .optional()
      .describe(`JSON array with exactly one entry per file, instead of ${f.singular.join(' / ')}.`);
  }
  if (route === 'jobs') {
    shape.jobType = z.enum(JOB_TYPES).default('convert').optional().describe('compress keeps a compatible format.');
    shape.createArchive = boolDoc(false, 'Also build one zip of all outputs when the job ends.').optional();
  }
  shape.saveToStorage = z
    .enum(['true', 'false'])
    .optional()
    .describe(
      route === 'jobs'
        ? 'Accepted for compatibility: jobs always store their results.'
        : 'true: results stay stored and come back as signed URLs; else inline data: URLs and nothing is kept.',
    );
  shape.sourceUrl = z.string().optional().describe('An input by URL instead of an upload, fetched by a worker (repeat the field for several).');
  shape.sourceUrls = z.string().optional().describe('JSON array of input URLs, after the uploaded files and sourceUrl fields.');
  shape.webhookUrl = z
    .string()
    .optional()
    .describe(
      "Kiln's extension: every webhook event of this job is also POSTed here, signed with the key's first endpoint secret or its default secret (POST /api/webhooks/secret).",
    );
  return z.object(shape);
}
