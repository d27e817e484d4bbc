/**
 * The server's upload limits (`GET /api/v1/uploads/limits`), kept in IndexedDB so a photo taken
 * offline is checked against what the server announced last (or the built-in default).
 */
import { request } from '../api/client';
import { authed } from '../device/session';
import type { YanshouDb } from '../store/db';
import { DEFAULT_LIMITS, readLimits, type UploadLimits } from './sniff';

const KEY = 'uploadLimits';

export async function cachedLimits(db: YanshouDb): Promise<UploadLimits> {
  const row = await db.meta.get(KEY);
  return row ? readLimits(row.value) : DEFAULT_LIMITS;
}

/** Asks the server (online) and keeps the answer. */
export async function refreshLimits(db: YanshouDb): Promise<UploadLimits> {
  const v = await authed(db, (token) => request<unknown>('/uploads/limits', { token }));
  const limits = readLimits(v);
  await db.meta.put({ key: KEY, value: limits });
  return limits;
}
