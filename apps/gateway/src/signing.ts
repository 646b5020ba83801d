/** Signed download URLs live in @kiln/storage (the workers sign the links in webhook payloads too). */
export { createSigner, loadSigningSecret, type Signer } from '@kiln/storage';
