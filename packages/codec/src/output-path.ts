/** Where an engine writes in the caller's scratch folder: `output.<ext>`, or `<stem>.<ext>` for a second file. */
import path from 'node:path';
import { OUTPUT_INFO, type OutputFormat } from '@kiln/formats';

export function outputPath(dir: string, format: OutputFormat, stem = 'output'): string {
  return path.join(dir, `${stem}.${OUTPUT_INFO[format].extension}`);
}
