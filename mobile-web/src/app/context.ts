/**
 * The app's shared state: the database and the signed-in session, as reactive values the
 * screens read. Screens call these functions and `store/`, `sync/`, `device/`; never IndexedDB
 * or fetch directly.
 */
import { reactive } from 'vue';
import type { User } from '../api/types';
import { loadSession, login as doLogin, logout as doLogout } from '../device/session';
import { openDb, type YanshouDb } from '../store/db';
import { refreshCounts, status, syncNow } from '../sync/engine';

export const db: YanshouDb = openDb();

export const session = reactive<{ user: User | null; deviceId: string | null; loaded: boolean }>({
  user: null,
  deviceId: null,
  loaded: false,
});

export async function loadContext(): Promise<void> {
  const s = await loadSession(db);
  session.user = s?.user ?? null;
  session.deviceId = s?.deviceId ?? null;
  session.loaded = true;
  await refreshCounts(db);
}

export async function login(username: string, password: string): Promise<void> {
  const s = await doLogin(db, username, password);
  session.user = s.user;
  session.deviceId = s.deviceId;
  status.phase = 'idle';
  status.lastError = null;
  void requestPersistence();
  await syncNow(db);
}

export async function logout(): Promise<void> {
  await doLogout(db);
  session.user = null;
  session.deviceId = null;
  await refreshCounts(db);
}

/** Asks the browser not to evict the app's storage (granted for installed apps, mostly). */
export async function requestPersistence(): Promise<boolean> {
  if (typeof navigator === 'undefined' || !navigator.storage?.persist) return false;
  try {
    if (await navigator.storage.persisted()) return true;
    return await navigator.storage.persist();
  } catch {
    return false;
  }
}
