/**
 * @kiln/codec — the engines: sharp for images, ffmpeg for audio/video, archiver/7-Zip for archives,
 * tracing to SVG, PDF. Takes paths and options, returns facts about the output. It must not depend
 * on HTTP, SQL, queues or environment variables: every limit arrives as an argument, a Limit that
 * carries its setting's name for the message (engine.ts), and which pairs each engine accepts comes
 * from @kiln/formats.
 */
// The untyped libraries' declarations travel with the entry, so a package importing the codec typechecks alone.
/// <reference path="./types/archiver.d.ts" />
/// <reference path="./types/heic-decode.d.ts" />
export * from './errors.ts';
export * from './engine.ts';
export * from './deadline.ts';
export * from './convert.ts';
export * from './compress/compress.ts';
export * from './compress/request.ts';
export * from './image/image.ts';
export * from './image/resize.ts';
export * from './archive/zip.ts';
export * from './process/run.ts';
export * from './process/sandbox.ts';
export { findOnPath } from './process/executable.ts';
export * from './media/binaries.ts';
export * from './media/probe.ts';
export * from './media/transcode.ts';
export * from './archive/sevenzip-bin.ts';
export * from './archive/write.ts';
export * from './archive/safety.ts';
export * from './image/svg.ts';
export * from './image/heic.ts';
export * from './vector/trace.ts';
export * from './document/pdf.ts';
export * from './tools/index.ts';
