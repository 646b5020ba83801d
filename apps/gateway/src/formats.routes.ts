/** `GET /api/formats`: the input → output matrix, generated from the same registry the codec uses. */
import { Router } from 'express';
import { CONVERSIONS, FORMAT_ALIASES, INPUT_INFO, INPUT_KINDS, OUTPUT_FORMATS, OUTPUT_INFO, compressTargetFor, mediaTypeTable, targetsFor } from '@kiln/formats';

export function formatsRouter(): Router {
  const r = Router();
  const body = {
    outputs: OUTPUT_FORMATS.map((f) => ({ format: f, ...OUTPUT_INFO[f] })),
    inputs: INPUT_KINDS.map((k) => {
      const rule = CONVERSIONS[INPUT_INFO[k].family];
      return { input: k, family: INPUT_INFO[k].family, mime: INPUT_INFO[k].mime, convertTo: targetsFor(k), options: rule.options, compressTo: compressTargetFor(k) ?? null };
    }),
    // Every name `format` accepts besides the canonical ones, as parseOutputFormat reads them.
    aliases: FORMAT_ALIASES,
    // Every MIME type and extension the TurboFiles dialect's `format` members accept, with what each names.
    mediaTypes: mediaTypeTable(),
  };
  r.get('/formats', (_req, res) => {
    res.json(body);
  });
  return r;
}
