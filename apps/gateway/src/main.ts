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
// The collection is a gc() flavour (idle-gc.ts): without --expose-gc, say so once instead of at every burst.
const canCollect = typeof globalThis.gc === 'function';
if (!canCollect && config.GATEWAY_IDLE_GC_SECONDS > 0)
  log.warn('the idle collection is off: it needs node --expose-gc, which scripts/start.ts gives the gateway; set GATEWAY_IDLE_GC_SECONDS=0 to silence this', {
    setting: 'GATEWAY_IDLE_GC_SECONDS',
  });
const idle = startIdleCollection(canCollect ? config.GATEWAY_IDLE_GC_SECONDS : 0, {
  onCollect: (e) => log.debug('idle collection', { rssBeforeMb: Math.round(e.rssBefore / 2 ** 20), rssAfterMb: Math.round(e.rssAfter / 2 ** 20), ms: Math.round(e.ms) }),
  onError: (err) => log.warn('idle collection failed', { err, setting: 'GATEWAY_IDLE_GC_SECONDS' }),
});
const stop = () => {
  idle.stop();
  void running.stop().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
