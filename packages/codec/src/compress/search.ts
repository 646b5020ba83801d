/**
 * Target-size search over an encoder's quality knob. Output size grows roughly exponentially with
 * quality, so log(size) is close to linear in q: each step interpolates (or, before the target is
 * bracketed, extrapolates along the measured slope) to the quality expected to land at 95 % of the
 * target — the middle of the accepted band [90 %, 100 %]. Typical searches take 2–5 encodes.
 * Pure: the encoder is a callback, so the search can be tested without images.
 */

export interface Encoded<T> {
  q: number;
  size: number;
  out: T;
}

export interface SearchOptions {
  target: number;
  minQ: number;
  maxQ: number;
  startQ: number;
  /** Most encodes this search may spend. */
  maxEncodes: number;
  /** Accept a fit as soon as it reaches this fraction of the target. Default 0.9. */
  lowRatio?: number;
  /** d log(size) / d q assumed before two points are measured. Default 0.03. */
  slope?: number;
}

export interface SearchOutcome<T> {
  /** The highest-quality encode at or under the target, if any. */
  fit: Encoded<T> | undefined;
  /** The lowest-quality encode over the target, if any. */
  over: Encoded<T> | undefined;
  encodes: number;
}

export async function searchQuality<T>(encode: (q: number) => Promise<Encoded<T>>, o: SearchOptions): Promise<SearchOutcome<T>> {
  const low = (o.lowRatio ?? 0.9) * o.target;
  const aim = Math.log(o.target * 0.95);
  const seen = new Map<number, Encoded<T>>();
  let fit: Encoded<T> | undefined;
  let over: Encoded<T> | undefined;
  let q = Math.round(Math.min(o.maxQ, Math.max(o.minQ, o.startQ)));
  let encodes = 0;

  /** Slope of log(size) over q from the measured points nearest the target (fallback: the default). */
  const slope = (): number => {
    const pts = [...seen.values()].sort((a, b) => Math.abs(Math.log(a.size) - aim) - Math.abs(Math.log(b.size) - aim));
    const [a, b] = pts;
    if (a && b && a.q !== b.q) {
      const s = (Math.log(b.size) - Math.log(a.size)) / (b.q - a.q);
      if (s > 0.002) return s;
    }
    return o.slope ?? 0.03;
  };

  while (encodes < o.maxEncodes) {
    const r = await encode(q);
    encodes++;
    seen.set(q, r);
    if (r.size <= o.target) {
      if (!fit || r.q > fit.q) fit = r;
      if (r.size >= low) break;
    } else if (!over || r.q < over.q) {
      over = r;
    }
    let next: number;
    if (fit && over) {
      if (over.q - fit.q <= 1) break;
      const span = Math.log(over.size) - Math.log(fit.size);
      // On a plateau (the encoder gave the same size for two qualities) interpolation crawls: bisect.
      const plateau = [...seen.values()].some((e) => e !== r && e.size === r.size);
      const t = span > 0 && !plateau ? (aim - Math.log(fit.size)) / span : 0.5;
      next = Math.round(fit.q + t * (over.q - fit.q));
      next = Math.min(over.q - 1, Math.max(fit.q + 1, next));
    } else if (fit) {
      if (fit.q >= o.maxQ) break;
      next = Math.round(fit.q + (aim - Math.log(fit.size)) / slope());
      next = Math.min(o.maxQ, Math.max(fit.q + 1, next));
    } else {
      if (over!.q <= o.minQ) break;
      next = Math.round(over!.q - (Math.log(over!.size) - aim) / slope());
      next = Math.max(o.minQ, Math.min(over!.q - 1, next));
    }
    if (seen.has(next)) break;
    q = next;
  }
  return { fit, over, encodes };
}
