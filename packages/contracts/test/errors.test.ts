import { ERROR_STATUS, FILE_ERROR_CODES, requestCodeForFileError } from '../src/errors.ts';

test("a file's failure becomes the client's 4xx when the file was at fault, and a 500 when Kiln was", () => {
  const status = (code: string | null) => ERROR_STATUS[requestCodeForFileError(code)];
  expect(status('invalid_input')).toBe(400);
  expect(status('unsupported_format')).toBe(415);
  expect(status('limit_exceeded')).toBe(413);
  for (const ours of ['timeout', 'engine_failed', 'cancelled']) expect(status(ours)).toBe(500);
  // Rows with no code, or a code this version does not know, are not the client's fault either.
  expect(status(null)).toBe(500);
  expect(status('something_new')).toBe(500);
  expect(FILE_ERROR_CODES.every((c) => requestCodeForFileError(c) in ERROR_STATUS)).toBe(true);
});
