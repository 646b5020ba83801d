/**
 * PDF both ways.
 * - In: the first page is rendered with pdf-to-img (pdf.js + @napi-rs/canvas), which never fetches
 *   anything. A PDF with more pages than the pdfPages limit is refused (limit_exceeded naming the setting)
 *   rather than silently cut: the limit says how much PDF Kiln agrees to open. The render scale aims
 *   at 150 DPI (or the resize box), capped by the pixel limit, using the page size pdf-lib reads.
 *   pdf.js runs inside this process: it cannot be killed on timeout like a child process.
 * - Out: one page per image with pdf-lib, the page the size of the image at 72 DPI (1 px = 1 pt).
 *   A JPEG is embedded as-is (its bytes appear verbatim in the PDF); anything else goes through
 *   sharp first (PNG when it has alpha, else JPEG at the requested quality).
 */
import fs from 'node:fs/promises';
import { PDFDocument } from 'pdf-lib';
import { pdf } from 'pdf-to-img';
import { CodecError, limitExceeded } from '../errors.ts';
import type { Limits, ResizeSpec } from '../engine.ts';

export interface PdfRenderOptions {
  limits: Pick<Limits, 'pdfPages' | 'pixels'>;
  resize?: ResizeSpec;
  /** Which page, 1-based (default 1); past the last page is invalid_input naming `page`. */
  page?: number;
}

const TARGET_DPI = 150;

function pdfError(err: unknown): CodecError {
  if (err instanceof CodecError) return err;
  const name = (err as { name?: string })?.name ?? '';
  const msg = err instanceof Error ? err.message : String(err);
  if (/Password/i.test(name) || /password/i.test(msg))
    return new CodecError('invalid_input', 'The PDF is password-protected; upload it without a password.', { cause: err, internal: msg });
  if (/InvalidPDF|FormatError|MissingPDF|UnexpectedResponse/i.test(name) || /Invalid PDF|No PDF header|bad XRef|Failed to parse/i.test(msg)) {
    return new CodecError('invalid_input', 'The PDF could not be read: it is damaged, truncated or not a PDF.', { cause: err, internal: msg });
  }
  return new CodecError('engine_failed', 'The PDF engine failed on this file.', { cause: err, internal: `${name}: ${msg}` });
}

/** Page size in points (rotation applied), from pdf-lib; undefined when pdf-lib cannot parse the file. */
async function pageSize(bytes: Uint8Array, index: number): Promise<{ width: number; height: number } | undefined> {
  try {
    const doc = await PDFDocument.load(bytes, { ignoreEncryption: true, updateMetadata: false, throwOnInvalidObject: false });
    const page = doc.getPage(index);
    const { width, height } = page.getSize();
    const rot = ((page.getRotation().angle % 360) + 360) % 360;
    return rot === 90 || rot === 270 ? { width: height, height: width } : { width, height };
  } catch {
    return undefined;
  }
}

/** Renders page 1 of `input` to a PNG at `output`. */
export function renderPdfFirstPage(input: string, output: string, o: PdfRenderOptions): Promise<{ pages: number; width: number; height: number; notes: string[] }> {
  return renderPdfPage(input, output, { ...o, page: 1 });
}

/** Renders one page (`o.page`, default 1) of `input` to a PNG at `output`. */
export async function renderPdfPage(input: string, output: string, o: PdfRenderOptions): Promise<{ pages: number; width: number; height: number; notes: string[] }> {
  const wanted = o.page ?? 1;
  const bytes = new Uint8Array(await fs.readFile(input));
  const size = await pageSize(bytes, wanted - 1);
  let scale = TARGET_DPI / 72;
  if (size) {
    if (o.resize && (o.resize.width || o.resize.height)) {
      scale = Math.max(o.resize.width ? o.resize.width / size.width : 0, o.resize.height ? o.resize.height / size.height : 0);
    }
    const maxScale = Math.sqrt(o.limits.pixels.max / Math.max(1, size.width * size.height));
    scale = Math.max(0.01, Math.min(scale, maxScale));
  }
  let doc: Awaited<ReturnType<typeof pdf>> | undefined;
  try {
    doc = await pdf(bytes, { scale, docInitParams: { useSystemFonts: false } });
    if (doc.length > o.limits.pdfPages.max) throw limitExceeded('The PDF', `${doc.length} pages`, o.limits.pdfPages, ' pages');
    if (doc.length < 1) throw new CodecError('invalid_input', 'The PDF has no pages.');
    if (wanted > doc.length) throw new CodecError('invalid_input', `page ${wanted} is past the last page of the PDF (it has ${doc.length}); send page=1 to ${doc.length}.`);
    const png = await doc.getPage(wanted);
    await fs.writeFile(output, png);
    const pages = doc.length;
    const notes = wanted > 1 ? [`Page ${wanted} of ${pages}.`] : [pages > 1 ? `Only the first of ${pages} pages was converted.` : 'The PDF has one page.'];
    const sharp = (await import('sharp')).default;
    const m = await sharp(png).metadata();
    if ((m.width ?? 0) * (m.height ?? 0) > o.limits.pixels.max) throw limitExceeded('The rendered page', `${m.width}×${m.height} pixels`, o.limits.pixels, ' pixels');
    return { pages, width: m.width ?? 0, height: m.height ?? 0, notes };
  } catch (err) {
    throw pdfError(err);
  } finally {
    await doc?.destroy().catch(() => undefined);
  }
}

export interface PdfImage {
  /** JPEG or PNG bytes. */
  bytes: Uint8Array;
  kind: 'jpg' | 'png';
  width: number;
  height: number;
}

/** Page sizes in points (1/72 in), portrait. */
const PAGE_SIZES = { a4: [595.28, 841.89], letter: [612, 792] } as const;

export interface PdfLayout {
  /** auto: each page the image's size at 72 DPI; a4 / letter: the image fitted inside the margins, centred, the page turned to match it. */
  pageSize: 'auto' | 'a4' | 'letter';
  /** Points between the image and the page's edges (a4 / letter). */
  margin: number;
}

/** Writes a PDF with one page per image, each page the image's size at 72 DPI (or a4 / letter with `layout`). */
export async function imagesToPdf(images: PdfImage[], output: string, layout: PdfLayout = { pageSize: 'auto', margin: 0 }): Promise<number> {
  const doc = await PDFDocument.create();
  doc.setProducer('Kiln');
  doc.setCreator('Kiln');
  for (const img of images) {
    const embedded = img.kind === 'jpg' ? await doc.embedJpg(img.bytes) : await doc.embedPng(img.bytes);
    if (layout.pageSize === 'auto') {
      const page = doc.addPage([img.width, img.height]);
      page.drawImage(embedded, { x: 0, y: 0, width: img.width, height: img.height });
      continue;
    }
    const [short, long] = PAGE_SIZES[layout.pageSize];
    const [pw, ph] = img.width > img.height ? [long, short] : [short, long];
    const room = { w: Math.max(1, pw - 2 * layout.margin), h: Math.max(1, ph - 2 * layout.margin) };
    const f = Math.min(room.w / img.width, room.h / img.height);
    const w = img.width * f;
    const h = img.height * f;
    const page = doc.addPage([pw, ph]);
    page.drawImage(embedded, { x: (pw - w) / 2, y: (ph - h) / 2, width: w, height: h });
  }
  const out = await doc.save();
  await fs.writeFile(output, out);
  return out.length;
}
