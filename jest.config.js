// Jest runs TypeScript as native ESM (sources import each other with `.ts` extensions, exactly as
// Node 22 runs them in production); swc only strips the types.
const swc = ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2023' }, module: { type: 'es6' } }];

/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': swc },
  testMatch: ['<rootDir>/{apps,packages}/*/{src,test}/**/*.test.ts', '<rootDir>/test/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/.tools/'],
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  // test/count-reporter.cjs writes the counts `pnpm test` prints (scripts/test.ts).
  reporters: ['default', '<rootDir>/test/count-reporter.cjs'],
  testTimeout: 60_000,
  maxWorkers: 2,
};
