/**
 * Running 7za (7-Zip 16.02 from 7zip-bin, or the configured one) through runProcess: listing with
 * `l -slt`, extracting, and creating 7z/bzip2/xz. Exit codes: 0 ok, 1 warning, 2 fatal (usually a
 * damaged archive), 7 bad command line, 8 out of memory, 255 stopped.
 */
import type { Deadline } from '../engine.ts';
import { CodecError } from '../errors.ts';
import { runWithin } from '../process/run.ts';
import { resolveSevenZip } from './sevenzip-bin.ts';

export interface SevenZipRun {
  sevenZipPath?: string;
  deadline: Deadline;
  signal?: AbortSignal;
  cwd?: string;
}

const DAMAGED =
  /Can ?not open (the )?file as archive|Data Error|CRC Failed|Unexpected end|Headers Error|is not archive|Unsupported Method|There are some data after the end|Can not open encrypted|Wrong password/i;

export async function run7za(args: string[], o: SevenZipRun, what: string): Promise<string> {
  const bin = await resolveSevenZip(o.sevenZipPath ? { configuredPath: o.sevenZipPath } : {});
  const r = await runWithin(o.deadline, bin.path, ['-bd', '-y', ...args], {
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.cwd ? { cwd: o.cwd } : {}),
    maxStdoutBytes: 64 * 1024 * 1024,
  });
  const text = `${r.stdout ?? ''}\n${r.stderrTail}`;
  if (r.code === 0) return r.stdout ?? '';
  if (DAMAGED.test(text)) {
    const enc = /encrypted|password/i.test(text);
    throw new CodecError(
      'invalid_input',
      enc ? 'The archive is encrypted; upload it without a password.' : `The archive could not be read: it is damaged, truncated or not a ${what} archive.`,
      { internal: text.slice(-4000) },
    );
  }
  throw new CodecError('engine_failed', `7-Zip failed while ${what === 'create' ? 'creating the archive' : 'reading the archive'} (exit code ${r.code}).`, {
    internal: text.slice(-4000),
  });
}

export interface SltEntry {
  path: string;
  folder: boolean;
  size: number;
  /** Unix file type from the Attributes field when 7-Zip has it, e.g. `l` for a symlink, `-` for a file. */
  unixType?: string;
  /** The raw Attributes text. */
  attributes: string;
  /** Target of a symbolic or hard link, when 7-Zip reports one. */
  link?: string;
}

/** Parses `7za l -slt` output into entries (the archive's own block, before `----------`, is skipped). */
export function parseSlt(stdout: string): SltEntry[] {
  const body = stdout
    .split(/\r?\n----------\r?\n/)
    .slice(1)
    .join('\n');
  const out: SltEntry[] = [];
  for (const block of body.split(/\r?\n\r?\n/)) {
    const fields = new Map<string, string>();
    for (const line of block.split(/\r?\n/)) {
      const m = /^([A-Za-z ]+?) = (.*)$/.exec(line);
      if (m) fields.set(m[1]!, m[2]!);
    }
    const p = fields.get('Path');
    if (p === undefined) continue;
    const attributes = fields.get('Attributes') ?? '';
    const link = fields.get('Symbolic Link') || fields.get('Hard Link') || fields.get('Link') || undefined;
    const unix = /\s([-dlcbps])[-rwxsStT]{9}/.exec(` ${attributes}`)?.[1];
    out.push({
      path: p,
      folder: fields.get('Folder') === '+' || /^D/.test(attributes),
      size: Number(fields.get('Size') ?? 0) || 0,
      attributes,
      ...(unix ? { unixType: unix } : {}),
      ...(link ? { link } : {}),
    });
  }
  return out;
}
