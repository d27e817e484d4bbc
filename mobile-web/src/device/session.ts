/**
 * Login, the device and its tokens.
 *
 * Logging in (online, once): the password opens a first session; the phone makes its device key,
 * enrolls it (`POST /devices`), then logs in again bound to the device (sync needs a
 * device-bound session) and ends the first session. The refresh token is kept in IndexedDB so
 * the app works offline for weeks and gets a new access token only when a sync needs one.
 * Refresh tokens rotate on every use and a reused one signs the user out everywhere, so refresh
 * runs under a Web Lock (one tab at a time) and re-reads the stored token inside it.
 */
import { ApiError, request, requestText } from '../api/client';
import type { Device, Session, User } from '../api/types';
import type { YanshouDb } from '../store/db';
import { deviceName, makeDeviceKey, publicJwk, type DeviceKey } from './key';

export interface StoredSession {
  user: User;
  deviceId: string;
  accessToken: string;
  /** ms since epoch (device clock). */
  accessExpiresAt: number;
  refreshToken: string;
  refreshExpiresAt: number;
}

export interface StoredDevice {
  id: string;
  userId: string;
  name: string;
  key: DeviceKey;
}

/** The user must log in again (refresh token expired, revoked or reused). */
export class LoginRequired extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoginRequired';
  }
}

export async function loadSession(db: YanshouDb): Promise<StoredSession | null> {
  const row = await db.meta.get('session');
  return (row?.value as StoredSession | undefined) ?? null;
}

export async function loadDevice(db: YanshouDb): Promise<StoredDevice | null> {
  const row = await db.meta.get('device');
  return (row?.value as StoredDevice | undefined) ?? null;
}

function toStored(s: Session, deviceId: string, now: number): StoredSession {
  return {
    user: s.user,
    deviceId,
    accessToken: s.access_token,
    accessExpiresAt: now + s.expires_in * 1000,
    refreshToken: s.refresh_token,
    refreshExpiresAt: now + s.refresh_expires_in * 1000,
  };
}

/** Number of ops, rejections and photos not yet uploaded that would be lost if this phone's
 * data were wiped. */
export async function unsyncedCount(db: YanshouDb): Promise<number> {
  return (
    (await db.outbox.count()) +
    (await db.rejections.count()) +
    (await db.uploads.where('state').equals('pending').count()) +
    (await db.strokes.where('state').equals('pending').count())
  );
}

/**
 * Log in with username and password; enroll this phone on first login. Refuses when the phone
 * holds another user's unsynced work (it would otherwise be mixed into this user's series).
 */
export async function login(db: YanshouDb, username: string, password: string): Promise<StoredSession> {
  const first = await request<Session>('/auth/login', { body: { username, password } });
  const endFirst = () =>
    request('/auth/logout', { body: { refresh_token: first.refresh_token } }).catch(() => undefined);
  const previous = await loadSession(db);
  if (previous && previous.user.id !== first.user.id && (await unsyncedCount(db)) > 0) {
    await endFirst();
    throw new Error(
      `本机还有 ${previous.user.display_name}（${previous.user.username}）未同步的数据。` +
        '请由其登录并同步，或在“设置”中导出后退出，再换用户登录。',
    );
  }
  let device = await loadDevice(db);
  if (device && device.userId !== first.user.id) device = null;
  const enroll = async (): Promise<StoredDevice> => {
    const key = await makeDeviceKey();
    const name = deviceName();
    const d = await request<Device>('/devices', {
      body: { name, public_key: await publicJwk(key) },
      token: first.access_token,
    });
    const stored = { id: d.id, userId: first.user.id, name, key };
    // A new device starts a new op series (seq 1) and pulls every record again.
    await db.transaction('rw', [db.meta, db.entities], async () => {
      await db.meta.put({ key: 'device', value: stored });
      await db.meta.delete('replica');
      await db.entities.clear();
    });
    return stored;
  };
  if (!device) device = await enroll();
  let bound: Session;
  try {
    bound = await request<Session>('/auth/login', {
      body: { username, password, device_id: device.id },
    });
  } catch (e) {
    // A revoked or unknown device (the county revoked a lost phone): enroll anew. The old
    // series ends; unsynced ops of a revoked device cannot be sent anyway (export them).
    if (e instanceof ApiError && (e.status === 403 || e.code === 'invalid_request')) {
      if ((await db.outbox.count()) > 0) {
        await endFirst();
        throw new Error('本机设备已被注销，未同步的数据无法再提交。请在“设置”中导出交给县办。', {
          cause: e,
        });
      }
      device = await enroll();
      bound = await request<Session>('/auth/login', {
        body: { username, password, device_id: device.id },
      });
    } else {
      throw e;
    }
  }
  await endFirst();
  const stored = toStored(bound, device.id, Date.now());
  if (previous && previous.user.id !== first.user.id) {
    await wipeWorkData(db);
  }
  await db.meta.put({ key: 'session', value: stored });
  return stored;
}

/** Deletes the work data of the previous user (records, lists); keeps preferences. */
async function wipeWorkData(db: YanshouDb): Promise<void> {
  await db.transaction(
    'rw',
    [
      db.meta,
      db.entities,
      db.outbox,
      db.rejections,
      db.mines,
      db.rounds,
      db.templates,
      db.org,
      db.photos,
      db.uploads,
      db.strokes,
    ],
    async () => {
      await Promise.all([
        db.strokes.clear(),
        db.photos.clear(),
        db.uploads.clear(),
        db.entities.clear(),
        db.outbox.clear(),
        db.rejections.clear(),
        db.mines.clear(),
        db.rounds.clear(),
        db.org.clear(),
        db.meta.delete('replica'),
        db.meta.delete('sync'),
      ]);
    },
  );
}

let refreshing: Promise<StoredSession> | null = null;

async function withLock<T>(name: string, f: () => Promise<T>): Promise<T> {
  const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
  if (locks) return locks.request(name, f);
  return f();
}

/**
 * A valid access token, refreshing it when it expires within a minute. Throws `LoginRequired`
 * when the refresh token no longer works, and `NetworkError` when offline.
 */
export async function accessToken(db: YanshouDb, force = false): Promise<string> {
  const s = await loadSession(db);
  if (!s) throw new LoginRequired('尚未登录');
  if (!force && s.accessExpiresAt - Date.now() > 60_000) return s.accessToken;
  if (!refreshing) {
    refreshing = withLock('yanshou-token-refresh', async () => {
      const current = await loadSession(db);
      if (!current) throw new LoginRequired('尚未登录');
      // Another tab may have refreshed while this one waited for the lock.
      if (current.refreshToken !== s.refreshToken && current.accessExpiresAt - Date.now() > 60_000) {
        return current;
      }
      if (current.refreshExpiresAt <= Date.now()) {
        throw new LoginRequired('登录已超过有效期，请联网重新登录（本机数据仍保留）');
      }
      let next: Session;
      try {
        next = await request<Session>('/auth/refresh', {
          body: { refresh_token: current.refreshToken },
        });
      } catch (e) {
        if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
          throw new LoginRequired('登录已失效，请重新登录（本机数据仍保留）');
        }
        throw e;
      }
      const stored = toStored(next, current.deviceId, Date.now());
      await db.meta.put({ key: 'session', value: stored });
      return stored;
    }).finally(() => {
      refreshing = null;
    });
  }
  return (await refreshing).accessToken;
}

/**
 * Runs an authenticated call with a valid access token; a 401 (the token expired early, or the
 * server restarted its clock) is retried once with a freshly refreshed token.
 */
export async function authed<T>(db: YanshouDb, f: (token: string) => Promise<T>): Promise<T> {
  const token = await accessToken(db);
  try {
    return await f(token);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      return f(await accessToken(db, true));
    }
    throw e;
  }
}

/** A strokes blob drawn on another device, from the server (its text; the caller checks it). */
export function fetchStrokes(db: YanshouDb): (sha256: string) => Promise<string> {
  return (sha256) =>
    authed(db, (token) => requestText(`/strokes/${encodeURIComponent(sha256)}`, { token, timeoutMs: 10_000 }));
}

/**
 * Log out: end the session on the server when reachable and delete this user's data and the
 * device key from the phone (the next login enrolls a new device with a fresh series, so ops
 * discarded here can never leave a gap in a series the server waits on). The caller warns first
 * when `unsyncedCount` is not zero.
 */
export async function logout(db: YanshouDb): Promise<void> {
  const s = await loadSession(db);
  if (s) {
    await request('/auth/logout', { body: { refresh_token: s.refreshToken }, timeoutMs: 5000 }).catch(
      () => undefined,
    );
  }
  await wipeWorkData(db);
  await db.transaction('rw', [db.meta], async () => {
    await db.meta.delete('session');
    await db.meta.delete('device');
  });
}
