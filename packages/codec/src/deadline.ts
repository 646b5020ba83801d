/**
 * The one deadline helper every engine uses. Made from the call's timeout Limit when the call
 * starts; each step asks `left()` for the time it may take (and gets the timeout error once none is
 * left), and child processes run inside `wrap()`, so a process stopped by its own timer reports the
 * call's timeout: the setting to raise is the call's, not the process's.
 */
import { CodecError } from './errors.ts';
import type { Deadline, Limit } from './engine.ts';

/** `subject` starts the message: "The conversion did not finish within 600 s; raise FILE_TIMEOUT_SECONDS to allow more." */
export function createDeadline(timeout: Limit, subject = 'The conversion'): Deadline {
  const end = Date.now() + timeout.max * 1000;
  const error: Deadline['error'] = (opts = {}) =>
    new CodecError(
      'timeout',
      `${subject} did not finish within ${timeout.max} s; raise ${timeout.setting} to allow more${opts.advice ? `, or ${opts.advice}` : ''}.`,
      opts.cause === undefined ? {} : { cause: opts.cause },
    );
  return {
    limit: timeout,
    left() {
      const ms = end - Date.now();
      if (ms <= 0) throw error();
      return ms;
    },
    error,
    async wrap(fn, advice) {
      try {
        return await fn();
      } catch (e) {
        if (e instanceof CodecError && e.kind === 'timeout') throw error({ cause: e, ...(advice ? { advice } : {}) });
        throw e;
      }
    },
  };
}
