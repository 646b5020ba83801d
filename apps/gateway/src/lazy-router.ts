/**
 * A router imported on its first request instead of at start-up. The gateway's memory is mostly
 * what it holds idle (docs/performance.md, "Gateway memory"), and route groups an upload never
 * touches — the dashboard, the TurboFiles dialect — cost their code, their zod schemas and the
 * modules only they use for as long as the process lives, in every gateway, whether or not anyone
 * opens them. Mounted at a fixed path, such a group is loaded by the first request under that path:
 * that request waits for the import and is then answered by the router as if it had been there all
 * along; requests that arrive while it loads wait for the same import.
 */
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';

export interface LazyRouter extends RequestHandler {
  /**
   * The loaded router's stack (Express's own field, so code that walks the app's routes sees the
   * group's routes once it has been loaded); undefined before the first request.
   */
  readonly stack: Router['stack'] | undefined;
  /** Imports the router now (the first request does it otherwise). */
  load(): Promise<Router>;
}

export function lazyRouter(load: () => Promise<Router>): LazyRouter {
  let router: Router | undefined;
  let loading: Promise<Router> | undefined;
  const ensure = (): Promise<Router> => {
    loading ??= load().then(
      (r) => {
        router = r;
        return r;
      },
      (err: unknown) => {
        // A failed import (a file missing after a bad deploy) is the failing request's 500, and the
        // next request tries again instead of inheriting the rejection forever.
        loading = undefined;
        throw err;
      },
    );
    return loading;
  };
  const handler = (req: Request, res: Response, next: NextFunction): void => {
    if (router) {
      router(req, res, next);
      return;
    }
    ensure().then((r) => r(req, res, next), next);
  };
  return Object.defineProperties(handler, {
    stack: { get: () => router?.stack, enumerable: true },
    load: { value: ensure },
  }) as LazyRouter;
}
