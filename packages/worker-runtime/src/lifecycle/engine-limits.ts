/**
 * Turns the ENGINE_MAX_* settings into the codec's engine sandbox (prlimit + setpriv from util-linux,
 * found on PATH), once per worker process, and says what applied for the start-up log and /readyz.
 */
import { configureEngineSandbox, findOnPath, type EngineSandbox } from '@kiln/codec';
import type { Config } from '@kiln/config';

export interface EngineLimitsReport {
  prlimit: string | null;
  parentDeathSignal: string | null;
  cpuSeconds: number;
  addressSpaceMb: number;
  fileSizeMb: number;
  /** What is missing, in a sentence for the log, when something could not be applied. */
  warning?: string;
}

export function configureEngineLimits(config: Pick<Config, 'ENGINE_MAX_CPU_SECONDS' | 'ENGINE_MAX_MEMORY_MB' | 'ENGINE_MAX_FILE_MB'>, pathVar?: string): EngineLimitsReport {
  // Linux only: prlimit sets rlimits on the exec'd engine, setpriv sets PR_SET_PDEATHSIG.
  const linux = process.platform === 'linux';
  const prlimitPath = linux ? findOnPath('prlimit', { searchPath: pathVar }) : undefined;
  const setprivPath = linux ? findOnPath('setpriv', { searchPath: pathVar }) : undefined;
  const sandbox: EngineSandbox = {
    prlimitPath,
    setprivPath,
    cpuSeconds: { max: config.ENGINE_MAX_CPU_SECONDS, setting: 'ENGINE_MAX_CPU_SECONDS' },
    addressSpaceBytes: { max: config.ENGINE_MAX_MEMORY_MB * 1024 * 1024, setting: 'ENGINE_MAX_MEMORY_MB' },
    fileSizeBytes: { max: config.ENGINE_MAX_FILE_MB * 1024 * 1024, setting: 'ENGINE_MAX_FILE_MB' },
  };
  configureEngineSandbox(sandbox);
  const missing = [!prlimitPath && 'prlimit (engine CPU, memory and file-size limits)', !setprivPath && 'setpriv (engines killed when their worker dies)'].filter(Boolean);
  return {
    prlimit: prlimitPath ?? null,
    parentDeathSignal: setprivPath ? 'SIGKILL' : null,
    cpuSeconds: config.ENGINE_MAX_CPU_SECONDS,
    addressSpaceMb: config.ENGINE_MAX_MEMORY_MB,
    fileSizeMb: config.ENGINE_MAX_FILE_MB,
    ...(missing.length ? { warning: `not found on PATH: ${missing.join(', ')}; install util-linux to apply them` } : {}),
  };
}
