import { loadConfig } from '@kiln/config';
import { startGateway } from './server.ts';

let running: Awaited<ReturnType<typeof startGateway>>;
try {
  running = await startGateway(loadConfig(process.env));
} catch (err) {
  console.error(`gateway failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
const stop = () => void running.stop().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
