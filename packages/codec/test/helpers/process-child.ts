/**
 * Run by process.test.ts in a separate Node process (`node process-child.ts <mode>`), so the test can
 * make *that* process exit or take a signal while runProcess has a child running.
 * Prints `leader <pid>` and `grandchild <pid>`, then:
 *   exit    → calls process.exit(0) straight away
 *   wait    → waits to be signalled (the test sends SIGTERM)
 *   handled → like wait, but installs its own SIGTERM handler that exits 0 after a moment
 */
import { runProcess } from '../../src/process/run.ts';

const mode = process.argv[2] ?? 'wait';

if (mode === 'handled') {
  process.on('SIGTERM', () => {
    console.log('handler ran');
    setTimeout(() => process.exit(0), 50);
  });
}

runProcess('sh', ['-c', 'sleep 30 & echo $!; wait'], {
  timeoutMs: 60_000,
  onSpawn: (pid) => console.log(`leader ${pid}`),
  onStdoutLine: (line) => {
    console.log(`grandchild ${line}`);
    if (mode === 'exit') process.exit(0);
  },
}).catch((e: unknown) => {
  console.log(`rejected ${String(e)}`);
});
