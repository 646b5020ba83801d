/**
 * @kiln/codec — the engines: sharp for images, ffmpeg for audio/video, archiver/7-Zip for archives,
 * tracing to SVG, PDF. Takes paths and options, returns facts about the output. It must not depend
 * on HTTP, SQL, queues or environment variables: every limit and setting arrives as an argument.
 */
export * from './errors.ts';
export * from './convert.ts';
export * from './image/image.ts';
export * from './image/resize.ts';
export * from './archive/zip.ts';
