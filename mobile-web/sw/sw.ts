/// <reference lib="webworker" />
/**
 * Yanshou's service worker, hand-written (STYLE.md §12).
 *
 * - **Precache**: the build writes the list of every file of the app and a version hash into
 *   this file (`vite.config.ts`); install caches them all under `yanshou-<version>`. A failed
 *   install leaves the old version in charge.
 * - **Updates wait for the user**: a new worker stays `waiting` until the page sends
 *   `{type: 'skip-waiting'}` (the user tapped “更新”); activate then deletes old caches.
 *   The records and the outbox live in IndexedDB, which this worker never touches.
 * - **Fetch**: only same-origin GETs outside `/api/` are answered from the cache (navigations
 *   get the cached app shell, so a reload with no network still starts the app); the API is
 *   always the network's, never cached here.
 */

declare const self: ServiceWorkerGlobalScope;
declare const __PRECACHE_MANIFEST__: string[];
declare const __BUILD_VERSION__: string;

const VERSION: string = __BUILD_VERSION__;
const PRECACHE: string[] = __PRECACHE_MANIFEST__;
const CACHE = `yanshou-${VERSION}`;
const SHELL = './';

function scoped(path: string): string {
  return new URL(path, self.registration.scope).href;
}

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // `cache: 'reload'` skips the HTTP cache so a stale file never enters a new version.
      await cache.addAll(PRECACHE.map((p) => new Request(scoped(p), { cache: 'reload' })));
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      const names = await caches.keys();
      await Promise.all(
        names.filter((n) => n.startsWith('yanshou-') && n !== CACHE).map((n) => caches.delete(n)),
      );
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('message', (event) => {
  const data: unknown = event.data;
  if (typeof data === 'object' && data !== null && (data as { type?: unknown }).type === 'skip-waiting') {
    void self.skipWaiting();
  }
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  const scope = new URL(self.registration.scope);
  const path = url.pathname.slice(scope.pathname.length - 1);
  if (path.startsWith('/api/') || path === '/healthz' || path === '/readyz') return;
  if (req.mode === 'navigate') {
    event.respondWith(
      (async () => {
        const cache = await caches.open(CACHE);
        const shell = await cache.match(scoped(SHELL));
        if (shell) return shell;
        return fetch(req);
      })(),
    );
    return;
  }
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      const hit = await cache.match(req, { ignoreSearch: true });
      if (hit) return hit;
      return fetch(req);
    })(),
  );
});

export {};
