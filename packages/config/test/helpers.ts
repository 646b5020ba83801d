import { ConfigError, loadConfig } from '../src/index.ts';

/** The issues loadConfig reports for `env` (none when it loads). */
export const issues = (env: Record<string, string>): string[] => {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
};
