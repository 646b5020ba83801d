/**
 * Archive engines.
 * - archiveEngine: any file → zip/tar/tgz/7z/gz/bz2/xz. An uploaded archive going to zip/tar/tgz/7z
 *   is extracted (safely, see safety.ts) and repacked; a gz/bz2/xz going to gz/bz2/xz is
 *   decompressed and recompressed; anything else becomes an archive holding that one file, named
 *   after the uploaded file.
 * - batchEngine: an uploaded archive → a non-archive format: each entry that can be converted is,
 *   and the results come back as one zip (Convertly's behaviour). Entries that cannot be converted
 *   are listed in the result notes; the file fails only when none converts.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  ARCHIVE_OUTPUTS,
  BATCH_OUTPUTS,
  canConvert,
  INPUT_INFO,
  isOneOf,
  MULTI_FILE_OUTPUTS,
  OUTPUT_INFO,
  READABLE_ARCHIVES,
  SINGLE_FILE_OUTPUTS,
  sniff,
  type ArchiveFormat,
  type InputKind,
  type OutputFormat,
} from '@kiln/formats';
import { CodecError, isCodecError, type CodecErrorKind } from '../errors.ts';
import type { Convert, ConvertRequest, ConvertResult, Deadline, Engine } from '../engine.ts';
import { extractArchive, innerName, readHead } from './extract.ts';
import { entryNameFor, levelFromQuality, uniqueNames, writeArchive, type PackEntry } from './write.ts';
import { outputPath } from '../output-path.ts';

/** A gz / bz2 / xz upload: one compressed stream (a tarball or a single file). */
const isCompressed = (kind: InputKind): boolean => INPUT_INFO[kind].family === 'compressed';

function sevenZip(req: ConvertRequest, deadline: Deadline) {
  return {
    ...(req.engines.sevenZipPath ? { sevenZipPath: req.engines.sevenZipPath } : {}),
    deadline,
    ...(req.signal ? { signal: req.signal } : {}),
  };
}

function extractOptions(req: ConvertRequest, deadline: Deadline, kind: InputKind) {
  return {
    ...sevenZip(req, deadline),
    input: req.input,
    kind,
    dir: path.join(req.outputDir, 'extracted'),
    workDir: path.join(req.outputDir, 'work'),
    ...(req.filename !== undefined ? { filename: req.filename } : {}),
    limits: req.limits,
  };
}

function result(format: ArchiveFormat, output: string, size: number, notes: string[]): ConvertResult {
  return { path: output, format, mimeType: OUTPUT_INFO[format].mime, size, appliedQuality: null, ...(notes.length ? { notes } : {}) };
}

export const archiveEngine: Engine = {
  name: 'archive',
  accepts: (_kind: InputKind, format: OutputFormat) => isOneOf(ARCHIVE_OUTPUTS, format),
  async run(req, deadline) {
    const format = req.format as ArchiveFormat;
    const output = outputPath(req.outputDir, format);
    const write = { ...sevenZip(req, deadline), level: levelFromQuality(req.quality), stageDir: path.join(req.outputDir, 'stage') };
    const kind = req.inputKind;

    if (isOneOf(MULTI_FILE_OUTPUTS, format) ? isOneOf(READABLE_ARCHIVES, kind) : isCompressed(kind)) {
      const x = await extractArchive(extractOptions(req, deadline, kind));
      if (isOneOf(SINGLE_FILE_OUTPUTS, format)) {
        // gz/bz2/xz → gz/bz2/xz: recompress what was inside (a tarball stays a tarball).
        if (x.innerKind === 'tar') {
          const tarPath = path.join(req.outputDir, 'inner.tar');
          await writeArchive(
            'tar',
            x.files.map((f) => ({ path: f.path, name: f.rel })),
            tarPath,
            write,
          );
          const name = innerName(req.filename, kind).replace(/(\.tar)?$/i, '.tar');
          const { size } = await writeArchive(format, [{ path: tarPath, name }], output, write);
          return result(format, output, size, [`Recompressed the tarball inside (${x.files.length} files) as ${format}.`]);
        }
        const { size } = await writeArchive(
          format,
          x.files.map((f) => ({ path: f.path, name: f.rel })),
          output,
          write,
        );
        return result(format, output, size, [`Recompressed the file inside as ${format}.`]);
      }
      const names = uniqueNames(x.files.map((f) => f.rel));
      const entries: PackEntry[] = x.files.map((f, i) => ({ path: f.path, name: names[i]! }));
      if (entries.length === 0) throw new CodecError('invalid_input', 'The archive holds no files.');
      const { size } = await writeArchive(format, entries, output, write);
      const from = x.innerKind === 'file' ? kind : x.innerKind === 'tar' && isCompressed(kind) ? `tar.${kind}` : kind;
      return result(format, output, size, [`Repacked ${entries.length} file${entries.length === 1 ? '' : 's'} from ${from} into ${format}.`]);
    }

    // Any single file becomes an archive holding it.
    // The entry is named by the upload; SDKs upload everything as `upload`, so add the kind (its extension).
    const name = entryNameFor(req.filename, kind);
    const { size } = await writeArchive(format, [{ path: req.input, name }], output, write);
    return result(format, output, size, [`${format} holding one file: ${name}.`]);
  },
};

const MAX_NOTES = 50;

/** Built with the dispatcher, which it runs on every entry (it cannot import it: the dispatcher imports the engines). */
export function createBatchEngine(convert: Convert): Engine {
  return {
    name: 'archive-batch',
    accepts: (kind: InputKind, format: OutputFormat) => isOneOf(READABLE_ARCHIVES, kind) && isOneOf(BATCH_OUTPUTS, format),
    run: (req, deadline) => convertEntries(req, deadline, convert),
  };
}

async function convertEntries(req: ConvertRequest, deadline: Deadline, convert: Convert): Promise<ConvertResult> {
  const x = await extractArchive(extractOptions(req, deadline, req.inputKind));
  const ext = OUTPUT_INFO[req.format].extension;
  const converted: { path: string; name: string }[] = [];
  const skipped: string[] = [];
  const failures: { rel: string; kind: CodecErrorKind; message: string }[] = [];
  const foundKinds = new Set<string>();
  for (const [i, f] of x.files.entries()) {
    if (req.signal?.aborted) throw new CodecError('cancelled', 'The conversion was cancelled.');
    deadline.left();
    const kind = f.size > 0 ? sniff(await readHead(f.path)) : undefined;
    if (kind) foundKinds.add(kind);
    if (!kind || isOneOf(READABLE_ARCHIVES, kind) || !canConvert(kind, req.format)) {
      skipped.push(
        `${f.rel}: ${kind ? (isOneOf(READABLE_ARCHIVES, kind) ? 'archives inside archives are not opened' : `${kind} cannot be converted to ${req.format}`) : 'not a recognised file type'}`,
      );
      continue;
    }
    const itemDir = path.join(req.outputDir, 'items', String(i));
    await fsp.mkdir(itemDir, { recursive: true });
    try {
      const r = await convert(
        {
          ...req,
          input: f.path,
          inputKind: kind,
          outputDir: itemDir,
          filename: path.basename(f.rel),
          onProgress: (p) => req.onProgress?.((i + p) / x.files.length),
        },
        deadline,
      );
      const outExt = r.format in OUTPUT_INFO ? OUTPUT_INFO[r.format as OutputFormat].extension : ext;
      converted.push({ path: r.path, name: f.rel.replace(/\.[^./]*$/, '') + `.${outExt}` });
    } catch (err) {
      if (!isCodecError(err) || err.kind === 'timeout' || err.kind === 'cancelled') throw err;
      failures.push({ rel: f.rel, kind: err.kind, message: err.message });
    }
    req.onProgress?.((i + 1) / x.files.length);
  }
  if (converted.length === 0) {
    if (failures.length === 0) {
      const found = foundKinds.size ? ` (found: ${[...foundKinds].join(', ')})` : '';
      throw new CodecError('unsupported', `None of the ${x.files.length} files in the archive can be converted to ${req.format}${found}.`);
    }
    const first = failures[0]!;
    const more = failures.length > 1 ? ` (and ${failures.length - 1} more failed)` : '';
    throw new CodecError(first.kind, `No file in the archive converted. ${first.rel}: ${first.message}${more}`);
  }
  const names = uniqueNames(converted.map((c) => c.name));
  const output = outputPath(req.outputDir, 'zip');
  const { size } = await writeArchive(
    'zip',
    converted.map((c, i) => ({ path: c.path, name: names[i]! })),
    output,
    {
      ...sevenZip(req, deadline),
      level: 6,
      stageDir: path.join(req.outputDir, 'stage'),
    },
  );
  const notes = [`Converted ${converted.length} of ${x.files.length} files in the archive to ${req.format}; the results are in a zip.`];
  const lines = [...failures.map((f) => `${f.rel}: ${f.message}`), ...skipped.map((s) => `${s} (skipped)`)];
  notes.push(...lines.slice(0, MAX_NOTES));
  if (lines.length > MAX_NOTES) notes.push(`…and ${lines.length - MAX_NOTES} more not converted.`);
  return { ...result('zip', output, size, []), notes };
}
