/**
 * Reads size, frame count and duration from a WebP file's RIFF chunks. ffprobe cannot read animated
 * WebP (it reports 0×0 and no duration), so the facts of our own animated WebP output come from here.
 * Reads chunk headers only, never the image data.
 */
import { open } from 'node:fs/promises';
import { CodecError } from '../errors.ts';

export interface WebpInfo {
  width: number;
  height: number;
  frames: number;
  /** Sum of the frame durations; 0 for a still image. */
  durationSeconds: number;
  animated: boolean;
}

const u24 = (b: Buffer, o: number): number => b.readUIntLE(o, 3);

export async function readWebpInfo(path: string): Promise<WebpInfo> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const head = Buffer.alloc(30);
    const read = async (pos: number, len: number): Promise<Buffer> => {
      const buf = len <= head.length ? head.subarray(0, len) : Buffer.alloc(len);
      const { bytesRead } = await fh.read(buf, 0, len, pos);
      if (bytesRead < len) throw new CodecError('engine_failed', 'The WebP output is truncated.');
      return buf;
    };

    const riff = await read(0, 12);
    if (riff.toString('latin1', 0, 4) !== 'RIFF' || riff.toString('latin1', 8, 12) !== 'WEBP') {
      throw new CodecError('engine_failed', 'The output is not a WebP file.');
    }
    const end = Math.min(size, 8 + riff.readUInt32LE(4));

    let width = 0;
    let height = 0;
    let frames = 0;
    let durationMs = 0;
    let animated = false;
    let pos = 12;
    while (pos + 8 <= end) {
      const hdr = await read(pos, 8);
      const fourcc = hdr.toString('latin1', 0, 4);
      const len = hdr.readUInt32LE(4);
      const body = pos + 8;
      if (fourcc === 'VP8X' && len >= 10) {
        const b = await read(body, 10);
        animated = (b[0]! & 0x02) !== 0;
        width = u24(b, 4) + 1;
        height = u24(b, 7) + 1;
      } else if (fourcc === 'ANMF' && len >= 16) {
        const b = await read(body, 16);
        frames += 1;
        durationMs += u24(b, 12);
      } else if (fourcc === 'VP8 ' && len >= 10 && width === 0) {
        const b = await read(body, 10);
        width = b.readUInt16LE(6) & 0x3fff;
        height = b.readUInt16LE(8) & 0x3fff;
        frames = Math.max(frames, 1);
      } else if (fourcc === 'VP8L' && len >= 5 && width === 0) {
        const b = await read(body, 5);
        const bits = b.readUInt32LE(1);
        width = (bits & 0x3fff) + 1;
        height = ((bits >>> 14) & 0x3fff) + 1;
        frames = Math.max(frames, 1);
      }
      pos = body + len + (len & 1);
    }
    if (width === 0 || height === 0 || frames === 0) {
      throw new CodecError('engine_failed', 'The WebP output has no image.');
    }
    return { width, height, frames, durationSeconds: durationMs / 1000, animated };
  } finally {
    await fh.close();
  }
}
