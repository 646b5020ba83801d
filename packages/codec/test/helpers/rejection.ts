/** The CodecError a promise rejects with; fails the test when it resolves or rejects with anything else. */
import { CodecError } from '../../src/errors.ts';

export async function rejection(p: Promise<unknown>): Promise<CodecError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(CodecError);
    return e as CodecError;
  }
  throw new Error('expected the promise to reject');
}
