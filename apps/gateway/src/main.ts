import { loadConfig } from '@kiln/config';
import { startIdleCollection } from './idle-gc.ts';
import { startGateway } from './server.ts';

let running: Awaited<ReturnType<typeof startGateway>>;
try {
  running = await startGateway(loadConfig(process.env));
} catch (err) {
  console.error(`gateway failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
const { log, config } = running.deps;
const idle = startIdleCollection(config.GATEWAY_IDLE_GC_SECONDS, {
  onCollect: (e) => log.debug('idle collection', { rssBeforeMb: Math.round(e.rssBefore / 2 ** 20), rssAfterMb: Math.round(e.rssAfter / 2 ** 20), ms: Math.round(e.ms) }),
  onError: (err) => log.warn('idle collection failed', { err, setting: 'GATEWAY_IDLE_GC_SECONDS' }),
});
const stop = () => {
  idle.stop();
  void running.stop().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
