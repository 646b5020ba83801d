/**
 * A queue's codec slots, apart from its message slots. A worker takes up to `slots + overlap` image
 * messages at once but lets only `slots` of them run the codec: the others meanwhile do what does not
 * need a core — claim their file, fetch its source, store an output, record the outcome, fetch the next
 * message — so a core never waits for a slot's round trips to Postgres and storage. Waiters enter in
 * arrival order; a waiter whose signal aborts leaves the line with the signal's reason.
 */
export class CodecGate {
  readonly slots: number;
  private free: number;
  private readonly line: { enter: () => void; signal: AbortSignal | undefined; onAbort: () => void }[] = [];

  constructor(slots: number) {
    this.slots = slots;
    this.free = slots;
  }

  /** Resolves with a release function once a codec slot is this caller's. */
  async enter(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.free > 0 && this.line.length === 0) {
      this.free -= 1;
      return this.releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const waiter = {
        enter: () => {
          signal?.removeEventListener('abort', waiter.onAbort);
          resolve();
        },
        signal,
        onAbort: () => {
          const i = this.line.indexOf(waiter);
          if (i >= 0) this.line.splice(i, 1);
          reject(signal!.reason);
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.line.push(waiter);
    });
    return this.releaser();
  }

  /** Codec slots in use and callers waiting for one (for tests and the start-up log). */
  get state(): { busy: number; waiting: number } {
    return { busy: this.slots - this.free, waiting: this.line.length };
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.line.shift();
      // The slot passes straight to the next in line; only with nobody waiting is it free again.
      if (next) next.enter();
      else this.free += 1;
    };
  }
}
