/**
 * The media tools as codec operations: `runTool(name, request)` picks the tool and runs it under one
 * deadline made from the request's timeout. Each tool is a function over the engines the
 * conversions use (sharp helpers, the ffmpeg toolkit, the PDF and tracing engines), never a service
 * of its own; the workers call it from the same file handler as conversions.
 */
import { createDeadline } from '../deadline.ts';
import { CodecError } from '../errors.ts';
import { adjust, imageToPdf, stripMetadata, transform, vectorize } from './images.ts';
import { convertMedia, extractAudio, gif, trim } from './av.ts';
import { inspect } from './inspect.ts';
import { pdfPreview, posterFrame, thumbnail } from './stills.ts';
import { storyboard } from './storyboard.ts';
import { watermark } from './watermark.ts';
import type { Tool, ToolRequest, ToolResult } from './tool.ts';

export * from './tool.ts';
export type { ThumbnailOptions, PosterFrameToolOptions, PdfPreviewOptions } from './stills.ts';
export type { ExtractAudioOptions, TrimOptions, GifOptions, ConvertToolOptions } from './av.ts';
export type { TransformOptions, AdjustOptions, VectorizeOptions, ImageToPdfOptions } from './images.ts';
export type { WatermarkOptions, Anchor } from './watermark.ts';
export type { StoryboardOptions } from './storyboard.ts';
export { anchorAt } from './watermark.ts';
export { storyboardVtt } from './storyboard.ts';
export { exifSummary } from './inspect.ts';

/** Every tool the codec runs, by the name clients call it. */
export const CODEC_TOOLS = {
  thumbnail,
  'poster-frame': posterFrame,
  'extract-audio': extractAudio,
  trim,
  gif,
  storyboard,
  watermark,
  inspect,
  'strip-metadata': stripMetadata,
  'image-to-pdf': imageToPdf,
  'pdf-preview': pdfPreview,
  transform,
  adjust,
  vectorize,
  convert: convertMedia,
} as const;
export type CodecToolName = keyof typeof CODEC_TOOLS;
export type CodecToolOptions<T extends CodecToolName> = (typeof CODEC_TOOLS)[T] extends Tool<infer O> ? O : never;

/** Runs one tool; `name` must be one of CODEC_TOOLS (anything else is `unsupported`). */
export async function runTool<T extends CodecToolName>(name: T, req: ToolRequest<CodecToolOptions<T>>): Promise<ToolResult> {
  const tool = CODEC_TOOLS[name] as Tool<CodecToolOptions<T>> | undefined;
  if (!tool) throw new CodecError('unsupported', `There is no media tool ${String(name)}.`);
  if (req.signal?.aborted) throw new CodecError('cancelled', 'The tool run was cancelled.');
  return tool(req, createDeadline(req.timeout, `The ${String(name)} tool`));
}
