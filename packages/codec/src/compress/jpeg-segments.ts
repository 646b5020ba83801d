/**
 * Lossless JPEG metadata stripping by rewriting marker segments: the entropy-coded image data is
 * copied byte for byte, so not one pixel changes (sharp cannot do this: it always re-quantises).
 *
 * Kept: APP0 (JFIF), APP2 ICC_PROFILE (colour), APP14 (Adobe: says how to read the colour channels)
 * and every coding segment. Dropped: APP1 (EXIF incl. GPS, XMP), APP13 (IPTC / Photoshop), the other
 * APPn (MPF, Ducky, FlashPix …), COM, and anything after EOI (phones append thumbnails and depth maps
 * there). A lossless rewrite cannot turn the pixels, so when asked to keep the orientation a minimal
 * EXIF block carrying only the Orientation tag is written back; without it a portrait photo would
 * show sideways.
 */
import { CodecError } from '../errors.ts';

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const COM = 0xfe;
const APP0 = 0xe0;
const APP1 = 0xe1;
const APP2 = 0xe2;
const APP14 = 0xee;

export interface JpegSegmentFacts {
  /** EXIF, XMP, IPTC, comments or trailing data were present (and are gone from the output). */
  hadMetadata: boolean;
  keptIcc: boolean;
  /** Orientation written back as a minimal EXIF block (1 = none written). */
  orientation: number;
}

function invalid(): CodecError {
  return new CodecError('invalid_input', 'The file could not be read as a JPEG: its marker segments are damaged.');
}

/** A minimal big-endian EXIF APP1 segment whose only tag is Orientation (0x0112). */
export function orientationOnlyExif(orientation: number): Buffer {
  const tiff = Buffer.alloc(8 + 2 + 12 + 4);
  tiff.write('MM', 0, 'latin1');
  tiff.writeUInt16BE(0x2a, 2);
  tiff.writeUInt32BE(8, 4); // first IFD right after the header
  tiff.writeUInt16BE(1, 8); // one entry
  tiff.writeUInt16BE(0x0112, 10); // Orientation
  tiff.writeUInt16BE(3, 12); // SHORT
  tiff.writeUInt32BE(1, 14); // count
  tiff.writeUInt16BE(orientation, 18); // value, left-justified in the 4-byte field
  tiff.writeUInt32BE(0, 22); // no next IFD
  const body = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
  const head = Buffer.from([0xff, APP1, 0, 0]);
  head.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([head, body]);
}

function isIcc(seg: Buffer): boolean {
  return seg.length >= 16 && seg.toString('latin1', 4, 16) === 'ICC_PROFILE\0';
}

/**
 * Rewrites `jpeg` without its metadata. `orientation` > 1 is written back as a minimal EXIF block.
 * Throws invalid_input when the marker structure cannot be followed.
 */
export function stripJpegMetadata(jpeg: Buffer, orientation = 1): { data: Buffer; facts: JpegSegmentFacts } {
  if (jpeg.length < 4 || jpeg[0] !== 0xff || jpeg[1] !== SOI) throw invalid();
  const out: Buffer[] = [jpeg.subarray(0, 2)];
  let hadMetadata = false;
  let keptIcc = false;
  let exifWritten = orientation <= 1;
  const writeExif = () => {
    if (!exifWritten) out.push(orientationOnlyExif(orientation));
    exifWritten = true;
  };
  let i = 2;
  for (;;) {
    if (i + 1 >= jpeg.length) throw invalid();
    if (jpeg[i] !== 0xff) throw invalid();
    // Fill bytes: any number of 0xFF may precede a marker.
    while (jpeg[i + 1] === 0xff && i + 2 < jpeg.length) i++;
    const marker = jpeg[i + 1]!;
    if (marker === EOI) {
      out.push(jpeg.subarray(i, i + 2));
      if (i + 2 < jpeg.length) hadMetadata = true;
      break;
    }
    if (i + 4 > jpeg.length) throw invalid();
    const len = jpeg.readUInt16BE(i + 2);
    const end = i + 2 + len;
    if (len < 2 || end > jpeg.length) throw invalid();
    const seg = jpeg.subarray(i, end);
    const isApp = marker >= 0xe0 && marker <= 0xef;
    if (marker === APP0) {
      out.push(seg);
    } else if (marker === APP2 && isIcc(seg)) {
      writeExif();
      out.push(seg);
      keptIcc = true;
    } else if (marker === APP14) {
      writeExif();
      out.push(seg);
    } else if (isApp || marker === COM) {
      hadMetadata = true;
    } else {
      writeExif();
      out.push(seg);
    }
    i = end;
    if (marker === SOS) {
      // Entropy-coded data: runs until a marker that is not stuffing (FF00), a restart (FFD0–D7) or fill.
      let j = i;
      for (;;) {
        if (j + 1 >= jpeg.length) {
          // Truncated after the scan data: keep what there is (decoders cope) rather than refusing.
          out.push(jpeg.subarray(i));
          return { data: Buffer.concat(out), facts: { hadMetadata, keptIcc, orientation: Math.max(orientation, 1) } };
        }
        if (jpeg[j] === 0xff) {
          const n = jpeg[j + 1]!;
          if (n === 0x00 || (n >= 0xd0 && n <= 0xd7) || n === 0xff) {
            j += n === 0xff ? 1 : 2;
            continue;
          }
          break;
        }
        j++;
      }
      out.push(jpeg.subarray(i, j));
      i = j;
    }
  }
  return { data: Buffer.concat(out), facts: { hadMetadata, keptIcc, orientation: Math.max(orientation, 1) } };
}
