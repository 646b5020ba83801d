/**
 * Per-key limits: the one type (stored as the api_keys.limits JSON, read back by @kiln/db), and how
 * operators type them (CLI flags, dashboard form fields): one table of the
 * settings, their flags and meaning, and one parser from strings so both front ends accept and refuse
 * exactly the same values. Every setting is optional; unset falls back to the server-wide default.
 */
import { OUTPUT_FORMATS, parseOutputFormat, type OutputFormat } from '@kiln/formats';

export interface KeyLimits {
  requestsPerMinute?: number;
  maxUploadBytes?: number;
  maxFilesPerJob?: number;
  maxConcurrentJobs?: number;
  allowedFormats?: OutputFormat[];
  monthlyJobQuota?: number;
  retentionHours?: number;
}
export type KeyLimitName = keyof KeyLimits;

export interface KeyLimitSpec {
  name: KeyLimitName;
  /** CLI flag, without the leading dashes. */
  flag: string;
  label: string;
  /** What applies when the key sets nothing: the server-wide setting. */
  fallback: string;
  kind: 'count' | 'bytes' | 'hours' | 'formats';
}

export const KEY_LIMIT_SPECS: readonly KeyLimitSpec[] = [
  { name: 'requestsPerMinute', flag: 'rpm', label: 'Requests per minute', fallback: 'KEY_DEFAULT_RPM', kind: 'count' },
  { name: 'maxUploadBytes', flag: 'max-upload-bytes', label: 'Largest upload (bytes, or 10MB, 1GB…)', fallback: 'MAX_UPLOAD_BYTES', kind: 'bytes' },
  { name: 'maxFilesPerJob', flag: 'max-files', label: 'Most files per job', fallback: 'MAX_FILES_PER_JOB', kind: 'count' },
  { name: 'maxConcurrentJobs', flag: 'max-concurrent', label: 'Most jobs pending or processing at once', fallback: 'KEY_DEFAULT_MAX_CONCURRENT_JOBS', kind: 'count' },
  { name: 'allowedFormats', flag: 'formats', label: 'Allowed output formats (comma-separated)', fallback: 'KEY_DEFAULT_ALLOWED_FORMATS', kind: 'formats' },
  { name: 'monthlyJobQuota', flag: 'monthly-quota', label: 'Jobs per calendar month', fallback: 'KEY_DEFAULT_MONTHLY_JOB_QUOTA', kind: 'count' },
  { name: 'retentionHours', flag: 'retention-hours', label: 'Keep results for (hours)', fallback: 'RETENTION_HOURS', kind: 'hours' },
];

const UNITS: Record<string, number> = { '': 1, b: 1, kb: 1024, k: 1024, mb: 1024 ** 2, m: 1024 ** 2, gb: 1024 ** 3, g: 1024 ** 3 };

/** `"10MB"` → 10485760; binary units (1 KB = 1024 bytes). Undefined when it isn't a size. */
export function parseBytes(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m && UNITS[m[2]!.toLowerCase()];
  if (!m || !unit) return undefined;
  const n = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(n) && n >= 1 ? n : undefined;
}

export interface LimitProblem {
  name: KeyLimitName;
  flag: string;
  message: string;
}

/**
 * Parses limits typed as strings, keyed by limit name. Blank or missing values mean "use the server
 * default" and are left out. Returns every problem at once, each naming the setting.
 */
export function parseKeyLimits(input: Partial<Record<KeyLimitName, string | undefined>>): { limits: KeyLimits; problems: LimitProblem[] } {
  const limits: KeyLimits = {};
  const problems: LimitProblem[] = [];
  for (const spec of KEY_LIMIT_SPECS) {
    const raw = input[spec.name]?.trim();
    if (!raw) continue;
    const bad = (message: string) => problems.push({ name: spec.name, flag: spec.flag, message: `${spec.label}: ${message}` });
    switch (spec.kind) {
      case 'count': {
        const n = Number(raw);
        if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < 1) bad(`"${raw}" is not a whole number ≥ 1 (leave it empty for the server default).`);
        else (limits as Record<string, number>)[spec.name] = n;
        break;
      }
      case 'bytes': {
        const n = parseBytes(raw);
        if (n === undefined) bad(`"${raw}" is not a size; write bytes or a size like 500KB, 10MB, 1GB.`);
        else limits.maxUploadBytes = n;
        break;
      }
      case 'hours': {
        const n = Number(raw);
        if (!Number.isFinite(n) || n <= 0 || n > 24 * 366) bad(`"${raw}" is not a number of hours above 0 (at most a year).`);
        else limits.retentionHours = n;
        break;
      }
      case 'formats': {
        const names = raw.split(/[\s,]+/).filter(Boolean);
        const unknown = names.filter((f) => !parseOutputFormat(f));
        if (unknown.length)
          bad(
            `${unknown.map((u) => `"${u}"`).join(', ')} ${unknown.length === 1 ? 'is not an output format' : 'are not output formats'}; choose from ${OUTPUT_FORMATS.join(', ')}.`,
          );
        else limits.allowedFormats = [...new Set(names.map((f) => parseOutputFormat(f)!))];
        break;
      }
    }
  }
  return { limits, problems };
}

/** One line per set limit, for the CLI and the dashboard: "60 requests/min, formats png, webp". */
export function describeKeyLimits(limits: KeyLimits): string {
  const parts: string[] = [];
  const mb = (n: number) => (n % 1024 ** 2 === 0 ? `${n / 1024 ** 2} MB` : n % 1024 === 0 ? `${n / 1024} KB` : `${n} bytes`);
  if (limits.requestsPerMinute) parts.push(`${limits.requestsPerMinute} requests/min`);
  if (limits.maxUploadBytes) parts.push(`uploads ≤ ${mb(limits.maxUploadBytes)}`);
  if (limits.maxFilesPerJob) parts.push(`≤ ${limits.maxFilesPerJob} files/job`);
  if (limits.maxConcurrentJobs) parts.push(`≤ ${limits.maxConcurrentJobs} jobs at once`);
  if (limits.allowedFormats?.length) parts.push(`formats ${limits.allowedFormats.join(', ')}`);
  if (limits.monthlyJobQuota) parts.push(`${limits.monthlyJobQuota} jobs/month`);
  if (limits.retentionHours) parts.push(`results kept ${limits.retentionHours} h`);
  return parts.join(', ');
}
