/**
 * The ordered engine list: the first engine that accepts (input kind, target) runs it. Each engine
 * module owns its pairs; the format registry's CONVERSIONS table is what clients are promised.
 */
import type { Engine } from './convert.ts';
import { imageEngine } from './image/engine.ts';

export const ENGINES: Engine[] = [
  imageEngine,
];
