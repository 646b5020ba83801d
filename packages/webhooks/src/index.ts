/**
 * @kiln/webhooks — Kiln's webhooks: the one module that turns a job change into events (events.ts,
 * called inside the change's own transaction), the two signature formats (Convertly's
 * `convertly-signature` and Standard Webhooks), secrets, and the delivery loop both workers run
 * (every request through @kiln/outbound). Depends on contracts, config (the Logger type), db,
 * metrics, outbound and storage (the download-link signer); never on HTTP frameworks or the codec.
 */
export * from './secrets.ts';
export * from './signatures.ts';
export * from './events.ts';
export * from './delivery.ts';
export * from './endpoints.ts';
export * from './recipients.ts';
