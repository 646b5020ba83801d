/**
 * The media engine's place in the dispatch: every pair the registry promises for audio, video and
 * animated GIF has an engine, image → image stays with sharp, and resize boxes never upscale video.
 */
import { INPUT_INFO, INPUT_KINDS, targetsFor } from '@kiln/formats';
import { pickEngine } from '../src/convert.ts';
import { videoResize } from '../src/media/engine.ts';
import type { MediaInfo } from '../src/media/probe.ts';

const MEDIA_KINDS = INPUT_KINDS.filter((k) => ['video', 'audio'].includes(INPUT_INFO[k].family));
/** Every target the media engine serves; the registry also offers archive targets, served elsewhere. */
const MEDIA_TARGETS: readonly string[] = ['mp4', 'webm', 'mov', 'mp3', 'wav', 'ogg', 'm4a', 'flac', 'gif', 'webp', 'jpg', 'png', 'avif', 'tiff', 'heif'];

test('every audio and video pair the registry promises is served by the ffmpeg engine', () => {
  for (const kind of MEDIA_KINDS) {
    const targets = targetsFor(kind).filter((t) => MEDIA_TARGETS.includes(t));
    expect(targets.length).toBeGreaterThan(0);
    for (const t of targets) expect([kind, t, pickEngine(kind, t)?.name]).toEqual([kind, t, 'ffmpeg']);
  }
});

test('an animated GIF goes to ffmpeg for video targets and image → image never does', () => {
  for (const t of ['mp4', 'webm', 'mov'] as const) expect(pickEngine('gif', t)?.name).toBe('ffmpeg');
  for (const t of ['jpg', 'png', 'webp', 'avif', 'tiff', 'gif', 'heif'] as const) {
    for (const kind of ['gif', 'png', 'jpg', 'webp'] as const) {
      const engine = pickEngine(kind, t)?.name;
      expect([kind, t, engine !== undefined && engine !== 'ffmpeg']).toEqual([kind, t, true]);
    }
  }
});

test('audio converts only to audio formats', () => {
  expect(targetsFor('wav')).toEqual(expect.arrayContaining(['mp3', 'wav', 'ogg', 'm4a', 'flac']));
  for (const t of ['mp4', 'webm', 'gif', 'png'] as const) expect(targetsFor('wav')).not.toContain(t);
});

function info(width: number, height: number, rotation?: number): MediaInfo {
  return {
    formatName: 'mov,mp4,m4a,3gp,3g2,mj2',
    durationSeconds: 2,
    streams: [{ index: 0, type: 'video', codec: 'h264', width, height, ...(rotation ? { rotation } : {}) }],
    hasVideo: true,
    hasAudio: false,
  };
}

test('resize boxes for video never upscale and keep only the side that constrains', () => {
  expect(videoResize(info(640, 360), undefined)).toBeUndefined();
  expect(videoResize(info(640, 360), { width: 1920, fit: 'inside' })).toBeUndefined();
  expect(videoResize(info(640, 360), { width: 301, fit: 'inside' })).toEqual({ width: 301, fit: 'inside' });
  expect(videoResize(info(640, 360), { width: 2000, height: 100, fit: 'inside' })).toEqual({ width: 178, fit: 'inside' });
  // A cover box larger than the source shrinks to fit inside it, keeping the box's shape.
  expect(videoResize(info(640, 360), { width: 1080, height: 1080, fit: 'cover' })).toEqual({ width: 360, height: 360, fit: 'cover' });
  // A phone video stored 1920×1080 with rotation 90 is 1080 wide as played.
  expect(videoResize(info(1920, 1080, 90), { width: 600, fit: 'inside' })).toEqual({ width: 600, fit: 'inside' });
  expect(videoResize(info(1920, 1080, 90), { height: 3000, fit: 'inside' })).toBeUndefined();
});
