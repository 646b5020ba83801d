/** Storage and role settings: defaults, and the combinations that are refused with the setting's name. */
import { loadConfig } from '../src/index.ts';
import { issues } from './helpers.ts';

test('local disk and all three roles are the defaults', () => {
  const c = loadConfig({});
  expect(c.STORAGE).toBe('local');
  expect(c.KILN_ROLES).toEqual(['gateway', 'convert', 'compress']);
  expect(c.DOWNLOAD_REDIRECT).toBe('none');
  expect(c.S3_REGION).toBe('us-east-1');
  expect(c.S3_FORCE_PATH_STYLE).toBe(false);
  expect(c.S3_PART_SIZE_MB).toBe(5);
});

test('KILN_ROLES is a comma list, in any order and case, without repeats', () => {
  expect(loadConfig({ KILN_ROLES: ' Compress , gateway,compress' }).KILN_ROLES).toEqual(['gateway', 'compress']);
  expect(issues({ KILN_ROLES: 'gateway,transcoder' })).toEqual(['KILN_ROLES: unknown role "transcoder": use a comma list of gateway, convert, compress']);
  expect(issues({ KILN_ROLES: ',' })).toEqual(['KILN_ROLES: unknown role (none): use a comma list of gateway, convert, compress']);
});

test('settings that only work together are refused together, each with its name', () => {
  expect(issues({ STORAGE: 's3', S3_ACCESS_KEY_ID: 'k', DOWNLOAD_REDIRECT: 's3' })).toEqual([
    'S3_BUCKET: required with STORAGE=s3 (the bucket Kiln keeps sources and results in)',
    'S3_SECRET_ACCESS_KEY: set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY together, or neither (the AWS default credential chain)',
  ]);
  expect(issues({ DOWNLOAD_REDIRECT: 's3' })).toEqual(['DOWNLOAD_REDIRECT: `s3` needs STORAGE=s3 (local blobs have no presigned URLs)']);
  expect(issues({ STORAGE: 's3', S3_BUCKET: 'b', MAX_UPLOAD_BYTES: String(60 * 1024 ** 3) })).toEqual([
    expect.stringMatching(/^S3_PART_SIZE_MB: 5 MiB parts store at most 52428800000 bytes .* raise S3_PART_SIZE_MB to at least 7$/),
  ]);
  expect(issues({ STORAGE: 's3', S3_BUCKET: 'b', S3_PART_SIZE_MB: '4' })).toEqual([expect.stringMatching(/^S3_PART_SIZE_MB: /)]);
  expect(issues({ S3_PREFIX: '/abs/' })).toEqual([expect.stringMatching(/^S3_PREFIX: must be a relative path/)]);
  expect(issues({ STORAGE: 's3', S3_BUCKET: 'b', S3_PREFIX: 'tenants/a/' })).toEqual([]);
});

test('UPLOAD_DIRECT is off by default and needs STORAGE=s3; TurboFiles files live 48 h', () => {
  const c = loadConfig({});
  expect(c.UPLOAD_DIRECT).toBe('none');
  expect(c.TURBOFILES_FILE_TTL_HOURS).toBe(48);
  expect(c.TURBOFILES_MAX_BODY_BYTES).toBe(65536);
  expect(issues({ UPLOAD_DIRECT: 's3' })).toEqual(['UPLOAD_DIRECT: `s3` needs STORAGE=s3 (local blobs have no presigned URLs)']);
  expect(loadConfig({ STORAGE: 's3', S3_BUCKET: 'b', UPLOAD_DIRECT: 's3' }).UPLOAD_DIRECT).toBe('s3');
});
