/**
 * The codec's single entry for a conversion: picks the engine for (input kind, target format) from
 * an ordered list, using the shared format registry, so `GET /api/formats` and the codec can never
 * disagree. Each engine lives in its own module and says which pairs it takes; the contract they
 * share is engine.ts.
 */
import { canConvert, refusalFor, type InputKind, type OutputFormat } from '@kiln/formats';
import { CodecError } from './errors.ts';
import { createDeadline } from './deadline.ts';
import type { ConvertRequest, ConvertResult, Deadline, Engine, FileConvertRequest } from './engine.ts';
import { engineList } from './engines.ts';

/** Built once; the batch engine gets `convert` itself to run on each entry of an archive. */
export const ENGINES: readonly Engine[] = engineList(convert);

export function pickEngine(kind: InputKind, format: OutputFormat): Engine | undefined {
  return ENGINES.find((e) => e.accepts(kind, format));
}

function engineFor(req: FileConvertRequest): Engine {
  // The gateway refuses these at submission; embedders calling the codec directly get the same sentence.
  const refusal = refusalFor(req.format);
  if (refusal) throw new CodecError('unsupported', refusal);
  const engine = canConvert(req.inputKind, req.format) ? pickEngine(req.inputKind, req.format) : undefined;
  if (!engine) throw new CodecError('unsupported', `Converting ${req.inputKind} to ${req.format} is not supported.`);
  if (req.signal?.aborted) throw new CodecError('cancelled', 'The conversion was cancelled.');
  return engine;
}

/** Converts one file; `deadline` is given by callers that convert as part of a larger call (archive entries, compress). */
export async function convert(req: ConvertRequest, deadline: Deadline = createDeadline(req.timeout)): Promise<ConvertResult> {
  const engine = engineFor(req);
  const result = await engine.run(req, deadline);
  return { ...result, engine: result.engine ?? engine.name };
}

/**
 * Whether converting `kind` to `format` writes nothing but the output file, so that `convertToFile`
 * takes it (the caller then needs no scratch folder: one sharp encode, for instance).
 */
export function writesOnlyOutput(kind: InputKind, format: OutputFormat): boolean {
  return canConvert(kind, format) && refusalFor(format) === undefined && pickEngine(kind, format)?.runToFile !== undefined;
}

/**
 * `convert`, writing the output at `output` (a path of the caller's; its folder must exist) and
 * nothing else. Only for a conversion `writesOnlyOutput` says so of: any other throws before it starts.
 */
export async function convertToFile(req: FileConvertRequest, output: string, deadline: Deadline = createDeadline(req.timeout)): Promise<ConvertResult> {
  const engine = engineFor(req);
  if (!engine.runToFile) throw new Error(`The ${engine.name} engine writes more than its output (${req.inputKind} to ${req.format}): call convert with a folder of its own.`);
  const result = await engine.runToFile(req, output, deadline);
  return { ...result, engine: result.engine ?? engine.name };
}
