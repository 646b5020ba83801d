// Writes the run's counts to the file named by KILN_TEST_COUNTS. `pnpm test` reads it for its
// `N passed, N failed` line: jest's --json output can fail to serialise (a circular error object from a
// failing test), and a missing summary must never read as a pass.
const fs = require('node:fs');

class CountReporter {
  onRunComplete(_contexts, results) {
    const file = process.env.KILN_TEST_COUNTS;
    if (!file) return;
    fs.writeFileSync(
      file,
      JSON.stringify({
        passed: results.numPassedTests,
        failed: results.numFailedTests + results.numRuntimeErrorTestSuites,
        skipped: results.numPendingTests + results.numTodoTests,
      }),
    );
  }
}
module.exports = CountReporter;
