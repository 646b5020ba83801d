/**
 * Turns ffmpeg's `-nostats -progress pipe:1` output into a fraction 0..1.
 *
 * ffmpeg writes a block of key=value lines about every 0.5 s, ending with `progress=continue` or
 * `progress=end`. The position is `out_time_us` (newer builds), `out_time` (HH:MM:SS.micro) or
 * `out_time_ms` — which, despite its name, is also in microseconds. Reported fractions are clamped
 * to 0..1 and never go down (ffmpeg can report a negative or earlier time at the start of a stream).
 */

export interface ProgressParserOptions {
  /** Expected output duration; null or 0 means unknown, in which case only the end (1) is reported. */
  durationSeconds: number | null | undefined;
  onProgress: (fraction: number) => void;
  /** Maps this run's 0..1 onto a part of the whole job, for multi-pass work. Default [0, 1]. */
  span?: readonly [number, number];
}

export interface ProgressParser {
  /** Feed one stdout line. */
  line(line: string): void;
  /** The fraction last reported (within the span). */
  readonly last: number;
}

function parseClock(v: string): number | undefined {
  const m = /^(-)?(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$/.exec(v.trim());
  if (!m) return undefined;
  const secs = Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]);
  return m[1] ? -secs : secs;
}

function parseMicros(v: string): number | undefined {
  if (!/^-?\d+$/.test(v.trim())) return undefined; // "N/A" before the first packet
  return Number(v) / 1e6;
}

export function createProgressParser(opts: ProgressParserOptions): ProgressParser {
  const [from, to] = opts.span ?? [0, 1];
  const duration = opts.durationSeconds && opts.durationSeconds > 0 ? opts.durationSeconds : undefined;
  let last = from;
  let reported = false;
  let block: { us?: number; clock?: number; ms?: number } = {};

  const report = (fraction: number): void => {
    const clamped = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
    const value = from + (to - from) * clamped;
    if (reported && value <= last) return;
    reported = true;
    last = value;
    opts.onProgress(value);
  };

  return {
    get last() {
      return last;
    },
    line(raw: string) {
      const eq = raw.indexOf('=');
      if (eq <= 0) return;
      const key = raw.slice(0, eq).trim();
      const value = raw.slice(eq + 1).trim();
      switch (key) {
        case 'out_time_us':
          block.us = parseMicros(value);
          break;
        case 'out_time':
          block.clock = parseClock(value);
          break;
        case 'out_time_ms':
          block.ms = parseMicros(value);
          break;
        case 'progress': {
          if (value === 'end') {
            report(1);
          } else if (duration !== undefined) {
            const t = block.us ?? block.clock ?? block.ms;
            if (t !== undefined) report(t / duration);
          }
          block = {};
          break;
        }
        default:
          break;
      }
    },
  };
}
