/**
 * The ordered engine list: the first engine that accepts (input kind, target) runs it. Each engine
 * module owns its pairs; the format registry's CONVERSIONS table is what clients are promised.
 */
import type { Engine } from './convert.ts';
import { imageEngine } from './image/engine.ts';
import { archiveEngine, batchEngine } from './archive/engine.ts';
import { decodedImageEngine, heifEncEngine } from './image/decoded-engine.ts';
import { traceEngine } from './vector/engine.ts';
import { pdfEngine } from './document/engine.ts';
import { mediaEngine } from './media/engine.ts';

export const ENGINES: Engine[] = [
  archiveEngine,
  batchEngine,
  heifEncEngine,
  decodedImageEngine,
  traceEngine,
  pdfEngine,
  imageEngine,
  mediaEngine,
];
