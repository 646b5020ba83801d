/**
 * A young-generation collection every few MiB of upload. Node's HTTP parser copies each piece of a
 * request body into a Buffer of its own (up to 64 KiB, one per socket read), held outside V8's heap
 * until a collection finds it dead. Streaming such a body allocates almost nothing on the heap
 * itself, so the young generation fills slowly and what frees these Buffers is V8's external-memory
 * limit instead: tens of MB of dead chunks, then a full mark-compact. Measured on a 2 GiB upload:
 * 74 mark-compacts, the gateway's RSS 30–50 MB above idle, 4.7–5.1 s of CPU. A minor collection
 * (a fraction of a millisecond: the chunks are its only work) every UPLOAD_GC_EVERY_BYTES frees them
 * while they are young: RSS a few MB above idle, 2.7 s of CPU (docs/performance.md).
 *
 * It needs `gc`, which Node exposes only with --expose-gc: scripts/start.ts starts the gateway with
 * it. Without the flag this does nothing, and memory behaves as V8 decides.
 */

/** Upload bytes (all uploads of the process together) between two minor collections. */
export const UPLOAD_GC_EVERY_BYTES = 4 * 1024 * 1024;

let sinceLast = 0;

/** Counts `bytes` of upload just received; runs a minor collection each time the count passes `everyBytes`. */
export function countUploadBytes(bytes: number, everyBytes = UPLOAD_GC_EVERY_BYTES): void {
  sinceLast += bytes;
  if (sinceLast < everyBytes) return;
  sinceLast = 0;
  // Read each time, not once at import: the function exists only with --expose-gc.
  globalThis.gc?.({ type: 'minor' });
}
