// The package ships JavaScript only. Its output mirrors prom2json's: one family per metric name.
declare module 'parse-prometheus-text-format' {
  export default function parsePrometheusTextFormat(text: string): unknown[];
}
