/**
 * Reads a /metrics page with a real Prometheus text-format parser (parse-prometheus-text-format, the
 * prom2json-compatible one on npm): a malformed line throws. That parser folds a histogram's labelled
 * series into one, so histograms are also read a second time with their TYPE line dropped, which
 * leaves each `_bucket`, `_sum` and `_count` sample as a series of its own with its labels.
 */
// The package ships no types; its declaration travels with this helper, so each package's typecheck finds it.
/// <reference path="../types/parse-prometheus-text-format.d.ts" />
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

interface Family {
  name: string;
  help: string;
  type: string;
  metrics: { labels?: Record<string, string>; value?: string }[];
}

export interface MetricsPage {
  families: Family[];
  /** Every series of every family (histograms as their _bucket/_sum/_count samples), with labels and value. */
  series: { name: string; labels: Record<string, string>; value: number }[];
  /** The one value of `name` whose labels include `labels`; undefined when there is none. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** The sum over every series of `name` whose labels include `labels` (0 when none). */
  sum(name: string, labels?: Record<string, string>): number;
}

export function parseMetricsPage(text: string): MetricsPage {
  const families = parsePrometheusTextFormat(text) as Family[];
  const histograms = new Set(families.filter((f) => f.type === 'HISTOGRAM').map((f) => f.name));
  const untyped = text
    .split('\n')
    .filter((l) => !(l.startsWith('# TYPE ') && histograms.has(l.split(' ')[2]!)))
    .join('\n');
  const series = (parsePrometheusTextFormat(untyped) as Family[]).flatMap((f) => f.metrics.map((m) => ({ name: f.name, labels: m.labels ?? {}, value: Number(m.value) })));
  const matching = (name: string, labels: Record<string, string>) => series.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return {
    families,
    series,
    value: (name, labels = {}) => {
      const found = matching(name, labels);
      if (found.length > 1) throw new Error(`${found.length} series of ${name} match ${JSON.stringify(labels)}; name more labels`);
      return found[0]?.value;
    },
    sum: (name, labels = {}) => matching(name, labels).reduce((n, s) => n + s.value, 0),
  };
}

/** GET a /metrics page (with a bearer token when given) and parse it. */
export async function scrape(url: string, token?: string): Promise<MetricsPage> {
  const res = await fetch(url, token ? { headers: { Authorization: `Bearer ${token}` } } : {});
  if (res.status !== 200) throw new Error(`GET ${url} → ${res.status} ${await res.text()}`);
  if (!/^text\/plain; version=0\.0\.4/.test(res.headers.get('content-type') ?? '')) throw new Error(`GET ${url}: content-type ${res.headers.get('content-type')}`);
  return parseMetricsPage(await res.text());
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

/** Label values that carry an id or a concrete path: each would add series per job. */
export function labelsWithIds(page: MetricsPage, ids: readonly string[] = []): string[] {
  const bad: string[] = [];
  for (const s of page.series) {
    for (const [k, v] of Object.entries(s.labels)) {
      if (UUID.test(v) || ids.some((id) => v.includes(id)) || (k === 'route' && v !== '(none)' && /\/\d+|\/[0-9a-f]{16,}/i.test(v))) bad.push(`${s.name}{${k}="${v}"}`);
    }
  }
  return bad;
}
