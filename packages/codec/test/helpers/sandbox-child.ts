/**
 * Run by sandbox.test.ts in a separate Node process, so the test can kill *that* process with SIGKILL
 * (no exit hook runs) while an engine runs under the sandbox. Prints `leader <pid>`, then waits.
 * `node sandbox-child.ts <setpriv path or ->`: `-` runs without the parent-death signal.
 */
import { runProcess } from '../../src/process/run.ts';
import { configureEngineSandbox } from '../../src/process/sandbox.ts';

const setpriv = process.argv[2] === '-' ? undefined : process.argv[2];
configureEngineSandbox({
  setprivPath: setpriv,
  cpuSeconds: { max: 0, setting: 'ENGINE_MAX_CPU_SECONDS' },
  addressSpaceBytes: { max: 0, setting: 'ENGINE_MAX_MEMORY_MB' },
  fileSizeBytes: { max: 0, setting: 'ENGINE_MAX_FILE_MB' },
});
runProcess('sleep', ['60'], { timeoutMs: 120_000, onSpawn: (pid) => console.log(`leader ${pid}`) }).catch(() => undefined);
