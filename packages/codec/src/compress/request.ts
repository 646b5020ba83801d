/** The compress contract: what `compress` is asked and answers, and what each family's compressor gets. Types only. */
import type { OutputFormat } from '@kiln/formats';
import type { ConvertRequest, ConvertResult, Deadline } from '../engine.ts';

export interface CompressRequest extends Omit<ConvertRequest, 'format'> {
  /** Asked-for output format; undefined keeps the input's own (or the closest compatible one). */
  format?: OutputFormat | undefined;
  mode: 'quality' | 'target-size';
  targetBytes: number | null;
  /** Size of the input file, for the never-larger rule and savedPercent. */
  originalSize: number;
}

export interface CompressResult extends ConvertResult {
  /** target-size only: whether the output is at or under targetBytes. */
  targetMet?: boolean;
  /** Why the target could not be met. */
  targetReason?: string;
  /** How many encodes the result took. */
  encodes?: number;
}

/** What a family's compressor is given: the request with its format settled, and the call's deadline. */
export interface CompressJob<F extends OutputFormat> extends Omit<CompressRequest, 'format'> {
  format: F;
  /** The format was asked for (or implied by the input, e.g. HEIC → JPEG) rather than kept. */
  formatChanged: boolean;
  deadline: Deadline;
}
