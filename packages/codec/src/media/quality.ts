/**
 * Maps Kiln's one quality knob (1..100, default 82 like sharp's JPEG default) onto each encoder's
 * own scale. Each curve is piecewise linear through three anchors: quality 1, 82 and 100. The 82
 * anchors are the usual "good default" of each encoder (x264 CRF 23, 192 kb/s MP3, Vorbis q6).
 */

type Anchors = readonly [q1: number, q82: number, q100: number];

function curve(q: number, [lo, mid, hi]: Anchors): number {
  const x = Math.min(100, Math.max(1, q));
  return x <= 82 ? lo + ((mid - lo) * (x - 1)) / 81 : mid + ((hi - mid) * (x - 82)) / 18;
}

/** libx264 CRF, 40 (q 1) … 23 (q 82) … 18 (q 100). Lower CRF is better quality. */
export function x264Crf(quality: number): number {
  return Math.round(curve(quality, [40, 23, 18]));
}

/** libvpx-vp9 CRF (with -b:v 0), 50 … 32 … 20. */
export function vp9Crf(quality: number): number {
  return Math.round(curve(quality, [50, 32, 20]));
}

const MP3_RATES = [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320] as const;

/** libmp3lame CBR kb/s, snapped to a standard MP3 rate: 64 … 192 … 320. */
export function mp3Kbps(quality: number): number {
  const want = curve(quality, [64, 192, 320]);
  return MP3_RATES.reduce((best, r) => (Math.abs(r - want) < Math.abs(best - want) ? r : best));
}

/** AAC kb/s (ffmpeg's native encoder), multiples of 16: 64 … 160 … 256. */
export function aacKbps(quality: number): number {
  return Math.round(curve(quality, [64, 160, 256]) / 16) * 16;
}

/** libopus kb/s, multiples of 8: 32 … 128 … 192. */
export function opusKbps(quality: number): number {
  return Math.round(curve(quality, [32, 128, 192]) / 8) * 8;
}

/** libvorbis -q:a, 0 … 6 … 10 in steps of 0.5. */
export function vorbisQuality(quality: number): number {
  return Math.round(curve(quality, [0, 6, 10]) * 2) / 2;
}

/** libwebp quality is already 0..100. */
export function webpQuality(quality: number): number {
  return Math.round(Math.min(100, Math.max(1, quality)));
}
