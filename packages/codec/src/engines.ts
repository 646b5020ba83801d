/**
 * The ordered engine list: the first engine that accepts (input kind, target) runs it. Each engine
 * module owns its pairs, read from the format registry's groups, whose CONVERSIONS table is what
 * clients are promised. Engines that convert entries on the way are handed the dispatcher here.
 */
import type { Convert, Engine } from './engine.ts';
import { imageEngine } from './image/engine.ts';
import { archiveEngine, createBatchEngine } from './archive/engine.ts';
import { decodedImageEngine, heifEncEngine } from './image/decoded-engine.ts';
import { traceEngine } from './vector/engine.ts';
import { pdfEngine } from './document/engine.ts';
import { mediaEngine } from './media/engine.ts';

export function engineList(convert: Convert): Engine[] {
  return [archiveEngine, createBatchEngine(convert), heifEncEngine, decodedImageEngine, traceEngine, pdfEngine, imageEngine, mediaEngine];
}
