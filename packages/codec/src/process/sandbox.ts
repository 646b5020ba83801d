/**
 * Resource limits and parent-death for every engine child process, applied by the process runner.
 *
 * An engine parses hostile files, so each one runs under:
 * - `prlimit` (util-linux): CPU seconds (RLIMIT_CPU), address space (RLIMIT_AS) and the largest file
 *   it may write (RLIMIT_FSIZE). The kernel stops a child that crosses the CPU or file limit with
 *   SIGXCPU / SIGXFSZ; the runner turns those into `limit_exceeded` naming the setting.
 * - `setpriv --pdeathsig KILL` (util-linux): the kernel kills the engine when the worker that spawned
 *   it dies, however it dies. Engines lead their own process group (so a timeout can kill everything
 *   they forked), which also means a worker killed with SIGKILL would otherwise leave them running.
 * Both tools exec the engine in place (no extra process stays around). Where they are missing the
 * engine runs without them; the worker reports which applied. Configured once per process by the
 * worker (the codec reads no environment): `configureEngineSandbox`.
 */
export interface EngineSandbox {
  /** prlimit's path; limits are skipped without it. */
  prlimitPath?: string | undefined;
  /** setpriv's path; parent-death is skipped without it. */
  setprivPath?: string | undefined;
  /** RLIMIT_CPU, with its setting's name (0 = none). */
  cpuSeconds: { max: number; setting: string };
  /** RLIMIT_AS in bytes (0 = none). */
  addressSpaceBytes: { max: number; setting: string };
  /** RLIMIT_FSIZE in bytes (0 = none). */
  fileSizeBytes: { max: number; setting: string };
}

let current: EngineSandbox | undefined;

/** Sets (or with `undefined` clears) the limits every later child process runs under. */
export function configureEngineSandbox(sandbox: EngineSandbox | undefined): void {
  current = sandbox;
}

export function engineSandbox(): EngineSandbox | undefined {
  return current;
}

/** The command line that runs `cmd args` inside the configured limits. */
export function sandboxCommand(cmd: string, args: string[]): { cmd: string; args: string[] } {
  const s = current;
  if (!s) return { cmd, args };
  let outCmd = cmd;
  let outArgs = args;
  if (s.setprivPath) {
    outArgs = ['--pdeathsig', 'KILL', '--', outCmd, ...outArgs];
    outCmd = s.setprivPath;
  }
  if (s.prlimitPath) {
    const limits: string[] = [];
    // Soft then hard: at the soft limit the kernel sends SIGXCPU (reported as the limit), at the hard
    // one SIGKILL; equal limits would make it SIGKILL at once, indistinguishable from any other kill.
    if (s.cpuSeconds.max > 0) limits.push(`--cpu=${s.cpuSeconds.max}:${s.cpuSeconds.max + 2}`);
    // Node itself (the tracing child) reserves far more address space than it uses (V8's heap cage,
    // WebAssembly guard regions): an address-space limit would stop it starting, so it gets none.
    if (s.addressSpaceBytes.max > 0 && cmd !== process.execPath) limits.push(`--as=${s.addressSpaceBytes.max}`);
    if (s.fileSizeBytes.max > 0) limits.push(`--fsize=${s.fileSizeBytes.max}`);
    if (limits.length) {
      outArgs = [...limits, '--', outCmd, ...outArgs];
      outCmd = s.prlimitPath;
    }
  }
  return { cmd: outCmd, args: outArgs };
}

/** The limit a child crossed, when the signal that ended it says so. */
export function crossedLimit(sig: NodeJS.Signals | null): { what: string; setting: string; max: number } | undefined {
  const s = current;
  if (!s?.prlimitPath || !sig) return undefined;
  if (sig === 'SIGXCPU') return { what: `more than ${s.cpuSeconds.max} CPU seconds`, setting: s.cpuSeconds.setting, max: s.cpuSeconds.max };
  if (sig === 'SIGXFSZ') return { what: `a file larger than ${Math.round(s.fileSizeBytes.max / 1024 / 1024)} MiB`, setting: s.fileSizeBytes.setting, max: s.fileSizeBytes.max };
  return undefined;
}
