/**
 * The sync loop (PROTOCOL.md §10 over `POST /api/v1/sync`) and the offline catalog.
 *
 * When: on demand, on app start, when the network returns (`online`), when the app becomes
 * visible (iOS has no Background Sync), shortly after an edit, and every few minutes while
 * visible. One sync at a time; a request lost on the way is simply sent again (the protocol makes
 * retries harmless). The catalog (mines, rounds, templates, departments, townships) is refreshed
 * after the records so the phone keeps everything it needs offline.
 */
import { reactive } from 'vue';
import { ApiError, NetworkError, describeError, request, requestText } from '../api/client';
import type { Department, Mine, MineDetail, Round, Template, Township } from '../api/types';
import { authed, loadSession, LoginRequired } from '../device/session';
import { decodeResponse, type EntityState, type SyncRequest } from '../protocol';
import { StorageError, type YanshouDb } from '../store/db';
import { loadOwners, saveOwners } from '../store/owners';
import { applyResponse, loadMeta, queuedOps } from '../store/replica';
import { DEPARTMENTS_ZH, ROLES } from '../ui/labels';

export type SyncPhase = 'idle' | 'syncing' | 'offline' | 'error' | 'login';

export interface SyncStatus {
  phase: SyncPhase;
  /** Ops not yet confirmed by the server. */
  pending: number;
  rejections: number;
  /** Photos not yet uploaded (their item names them), and photos the server refused. */
  pendingUploads: number;
  refusedUploads: number;
  /** Handwritten signatures not yet uploaded (their signatures wait in the outbox). */
  pendingStrokes: number;
  /** The upload queue is running. */
  uploading: boolean;
  lastSyncAt: number | null;
  lastError: string | null;
  /** Bumped after every successful sync, so screens reload what they show. */
  generation: number;
}

export const status = reactive<SyncStatus>({
  phase: 'idle',
  pending: 0,
  rejections: 0,
  pendingUploads: 0,
  refusedUploads: 0,
  pendingStrokes: 0,
  uploading: false,
  lastSyncAt: null,
  lastError: null,
  generation: 0,
});

const BATCH = 500;
const MAX_ROUNDS = 200;

export async function refreshCounts(db: YanshouDb): Promise<void> {
  status.pending = await db.outbox.count();
  status.rejections = await db.rejections.count();
  status.pendingUploads = await db.uploads.where('state').equals('pending').count();
  status.refusedUploads = await db.uploads.where('state').equals('refused').count();
  status.pendingStrokes = await db.strokes.where('state').equals('pending').count();
  const row = await db.meta.get('sync');
  const saved = row?.value as { lastSyncAt: number | null } | undefined;
  if (saved && status.lastSyncAt === null) status.lastSyncAt = saved.lastSyncAt;
}

/** Push and pull until both are done. */
async function pushPull(db: YanshouDb, deviceId: string): Promise<void> {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const meta = await loadMeta(db, deviceId);
    const ops = await queuedOps(db, BATCH);
    const req: SyncRequest = {
      protocol_version: 1,
      device: deviceId,
      ops,
      cursor: meta.cursor,
      pull_limit: 1000,
    };
    const body = JSON.stringify(req);
    const text = await authed(db, (token) =>
      requestText('/sync', { rawBody: body, token, timeoutMs: 60_000 }),
    );
    const response = decodeResponse(text);
    const report = await applyResponse(db, deviceId, ops, response);
    const gap = response.results.some((r) => r.status === 'gap');
    status.pending = await db.outbox.count();
    if (gap && report.applied + report.conflicts === 0 && !response.has_more) {
      throw new Error('服务器报告操作序号缺口，无法继续提交。请导出未同步数据并联系县办。');
    }
    const moreOps = ops.length === BATCH || gap;
    if (!response.has_more && !moreOps) return;
  }
}

/** Refreshes the lists the phone keeps for offline use. */
async function refreshCatalog(db: YanshouDb): Promise<void> {
  const [mines, departments, townships] = await authed(db, (token) =>
    Promise.all([
      request<Mine[]>('/mines', { token }),
      request<Department[]>('/departments', { token }),
      request<Township[]>('/townships', { token }),
    ]),
  );
  const now = Date.now();
  await db.transaction('rw', [db.mines, db.org], async () => {
    const keep = new Set(mines.map((m) => m.id));
    await db.mines.filter((m) => !keep.has(m.id)).delete();
    for (const m of mines) {
      const old = await db.mines.get(m.id);
      await db.mines.put({
        id: m.id,
        townshipId: m.township_id,
        mine: m,
        detail: old?.detail ?? null,
        fetchedAt: now,
        detailAt: old?.detailAt,
      });
    }
    await db.org.put({ key: 'departments', value: departments });
    await db.org.put({ key: 'townships', value: townships });
  });
  // Rounds, details and templates of the mines that have records on the phone.
  const records = await db.entities.toArray();
  const mineIds = new Set(records.map((r) => r.mineId).filter((m): m is string => m !== null));
  const templateRefs = new Set<string>();
  for (const r of records) {
    const t = r.state.fields['template']?.value;
    if (typeof t === 'string') templateRefs.add(t);
  }
  // Details (deadlines) only when the mine changed or they are half a day old: a sync over one
  // bar of signal should not fetch every mine's page again.
  const listed = new Map(mines.map((m) => [m.id, m]));
  for (const mineId of mineIds) {
    const m = listed.get(mineId);
    if (!m) continue;
    const row = await db.mines.get(mineId);
    const fresh =
      row?.detail &&
      row.detail.updated_at === m.updated_at &&
      row.detailAt !== undefined &&
      now - row.detailAt < DETAIL_MAX_AGE_MS;
    if (!fresh) await refreshMine(db, mineId);
  }
  for (const ref of templateRefs) {
    if (!(await db.templates.get(ref))) await fetchTemplate(db, ref);
  }
  await refreshOwners(db, records.map((r) => r.state));
}

interface DeviceOwner {
  display_name: string;
  role: string;
  department: string | null;
}

/** Names the writers of conflicting values (device → person), for reading conflicts offline. */
async function refreshOwners(db: YanshouDb, states: EntityState[]): Promise<void> {
  const owners = await loadOwners(db);
  const wanted = new Set<string>();
  for (const state of states) {
    for (const f of Object.values(state.fields)) {
      for (const c of f.conflict?.candidates ?? []) wanted.add(c.device);
      for (const c of f.resolution?.candidates ?? []) wanted.add(c.device);
    }
  }
  let changed = false;
  for (const device of wanted) {
    if (device in owners || device === '00000000-0000-0000-0000-000000000000') continue;
    try {
      const o = await authed(db, (token) =>
        request<DeviceOwner>(`/devices/${encodeURIComponent(device)}/owner`, { token }),
      );
      const unit = o.department ? (DEPARTMENTS_ZH[o.department] ?? o.department) : (ROLES[o.role] ?? o.role);
      owners[device] = `${o.display_name}（${unit}）`;
      changed = true;
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 403)) continue;
      throw e;
    }
  }
  if (changed) await saveOwners(db, owners);
}

/** How long a mine's page (deadlines with days left) is kept before it is fetched again. */
const DETAIL_MAX_AGE_MS = 12 * 3600 * 1000;

/** Fetches one mine's detail and rounds (online), keeping them for offline use. */
export async function refreshMine(db: YanshouDb, mineId: string): Promise<void> {
  const [detail, rounds] = await authed(db, (token) =>
    Promise.all([
      request<MineDetail>(`/mines/${encodeURIComponent(mineId)}`, { token }),
      request<Round[]>(`/mines/${encodeURIComponent(mineId)}/rounds`, { token }),
    ]),
  );
  await db.transaction('rw', [db.mines, db.rounds], async () => {
    await db.mines.put({
      id: detail.id,
      townshipId: detail.township_id,
      mine: detail,
      detail,
      fetchedAt: Date.now(),
      detailAt: Date.now(),
    });
    for (const r of rounds) await db.rounds.put({ id: r.id, mineId: r.mine_id, round: r });
  });
}

export async function fetchTemplate(db: YanshouDb, ref: string): Promise<Template> {
  const at = ref.lastIndexOf('@');
  const path = `/templates/${encodeURIComponent(ref.slice(0, at))}/${encodeURIComponent(ref.slice(at + 1))}`;
  const template = await authed(db, (token) => request<Template>(path, { token }));
  await db.templates.put({ ref, template });
  return template;
}

let running: Promise<void> | null = null;

/** Runs one sync unless one is running (then waits for it). Never throws. */
export function syncNow(db: YanshouDb): Promise<void> {
  if (!running) {
    running = doSync(db).finally(() => {
      running = null;
    });
  }
  return running;
}

async function doSync(db: YanshouDb): Promise<void> {
  const session = await loadSession(db);
  if (!session) {
    status.phase = 'login';
    return;
  }
  if (typeof navigator !== 'undefined' && navigator.onLine === false) {
    status.phase = 'offline';
    await refreshCounts(db);
    return;
  }
  status.phase = 'syncing';
  try {
    // Handwritten signatures first: the server refuses a signature whose strokes it does not
    // hold, and the push stops before such an op (`queuedOps`) until its blob is uploaded.
    if ((await db.strokes.where('state').equals('pending').count()) > 0) {
      const { runStrokeUploads } = await import('../upload/queue');
      await runStrokeUploads(db);
    }
    await pushPull(db, session.deviceId);
    // Photos go after the ops that name them; the queue runs beside the rest of the sync.
    if ((await db.uploads.where('state').equals('pending').count()) > 0) uploadSoon(db);
    await refreshCatalog(db);
    status.lastSyncAt = Date.now();
    status.lastError = null;
    status.phase = 'idle';
    await db.meta.put({ key: 'sync', value: { lastSyncAt: status.lastSyncAt } });
  } catch (e) {
    if (e instanceof LoginRequired) {
      status.phase = 'login';
      status.lastError = e.message;
    } else if (e instanceof NetworkError) {
      status.phase = 'offline';
      status.lastError = describeError(e);
    } else if (e instanceof StorageError) {
      status.phase = 'error';
      status.lastError = e.message;
    } else {
      status.phase = 'error';
      status.lastError = describeError(e);
    }
  } finally {
    await refreshCounts(db);
    status.generation++;
  }
}

let uploads: Promise<void> | null = null;

/**
 * Runs the photo upload queue unless it is running (its code is loaded on first use, so the
 * first screen does not pay for it). When photos completed, a sync follows: the server's
 * findings (`photos/<sha256>`) arrive through the feed.
 */
export function uploadSoon(db: YanshouDb): Promise<void> {
  if (!uploads) {
    uploads = (async () => {
      status.uploading = true;
      try {
        const { runUploads } = await import('../upload/queue');
        const report = await runUploads(db);
        await refreshCounts(db);
        status.generation++;
        if (report.completed > 0) {
          // A sync under way may have pulled before the server wrote them: one more after it.
          if (running) await running;
          void syncNow(db);
        }
      } catch (e) {
        if (e instanceof LoginRequired) {
          status.phase = 'login';
          status.lastError = e.message;
        } else {
          status.lastError = `照片上传失败：${describeError(e)}`;
        }
      } finally {
        status.uploading = false;
      }
    })().finally(() => {
      uploads = null;
    });
  }
  return uploads;
}

let editTimer: ReturnType<typeof setTimeout> | null = null;

/** After an edit: sync a little later (edits come in bursts). */
export function syncSoon(db: YanshouDb, delayMs = 3000): void {
  if (editTimer) clearTimeout(editTimer);
  editTimer = setTimeout(() => {
    editTimer = null;
    if (navigator.onLine) void syncNow(db);
  }, delayMs);
}

/** Installs the triggers: network back, app visible, and a slow timer while visible. */
export function startAutoSync(db: YanshouDb): void {
  window.addEventListener('online', () => void syncNow(db));
  window.addEventListener('offline', () => {
    if (status.phase !== 'syncing') status.phase = 'offline';
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') void syncNow(db);
  });
  setInterval(
    () => {
      if (document.visibilityState === 'visible' && navigator.onLine) void syncNow(db);
    },
    5 * 60 * 1000,
  );
  void syncNow(db);
}
