/**
 * Service worker registration and app updates. A new version installs in the background and
 * then **waits**: the app shows “有新版本”, and only when the user taps it does the new worker take
 * over (`skip-waiting` message) and the page reload. Local data lives in IndexedDB, which the
 * worker never touches, so an update cannot drop the outbox.
 */
import { reactive } from 'vue';

export const update = reactive<{ available: boolean; registered: boolean; error: string | null }>({
  available: false,
  registered: false,
  error: null,
});

let waiting: ServiceWorker | null = null;

export function registerServiceWorker(): void {
  if (!('serviceWorker' in navigator)) {
    update.error = '此浏览器不支持离线（Service Worker）';
    return;
  }
  if (import.meta.env.DEV) return;
  let reloading = false;
  // The very first worker takes control of an uncontrolled page (`clients.claim`): that is no
  // new version, and reloading then would wipe what the user is typing (or a login in flight).
  let controlled = navigator.serviceWorker.controller !== null;
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    if (!controlled) {
      controlled = true;
      return;
    }
    if (reloading) return;
    reloading = true;
    window.location.reload();
  });
  navigator.serviceWorker
    .register('./sw.js', { scope: './' })
    .then((reg) => {
      update.registered = true;
      const offer = (w: ServiceWorker | null) => {
        if (w && navigator.serviceWorker.controller) {
          waiting = w;
          update.available = true;
        }
      };
      offer(reg.waiting);
      reg.addEventListener('updatefound', () => {
        const w = reg.installing;
        w?.addEventListener('statechange', () => {
          if (w.state === 'installed') offer(w);
        });
      });
      // Look for a new version when the app comes back to the foreground.
      document.addEventListener('visibilitychange', () => {
        if (document.visibilityState === 'visible' && navigator.onLine) {
          reg.update().catch(() => undefined);
        }
      });
    })
    .catch((e: unknown) => {
      update.error = `离线功能未能启用：${e instanceof Error ? e.message : String(e)}`;
    });
}

/** The user accepted the update: let the waiting worker take over (the page then reloads). */
export function applyUpdate(): void {
  waiting?.postMessage({ type: 'skip-waiting' });
}
