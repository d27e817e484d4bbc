/**
 * The upload queue: every photo of a record the phone holds goes to the server by the resumable,
 * tus-like upload of `/api/v1/uploads` (README "Photo uploads"), after the op push that named it.
 *
 * - **Resumable**: the server's upload id and the offset it acknowledged are stored in IndexedDB
 *   after every chunk, so a dropped connection, a reload or a week offline continues from there;
 *   a 409 carries the server's own offset (`Upload-Offset`) and the upload continues from it.
 * - **Dedupe**: `POST /uploads` answers 200 `complete` when the server already holds the bytes.
 * - **Isolated failures**: a file the server refuses (422, 413, 400) is marked refused with the
 *   server's reason and shown; the queue goes on with the next. Other failures back off
 *   (per upload, doubling up to half an hour); losing the network stops the run.
 * - **Bytes**: the original stays on the phone until the server confirmed the upload complete
 *   for every record the photo is on; then it is dropped to save space and the thumbnail is kept
 *   for offline viewing (the server holds the original, byte for byte).
 * - **Only photos still on their item** are sent: a photo taken off an item before upload is
 *   `dropped` (its bytes kept) and becomes `pending` again if the item names it again.
 */
import { ApiError, NetworkError, describeError, requestRaw } from '../api/client';
import { authed, LoginRequired } from '../device/session';
import type { PhotoRow, StrokesRow, UploadRow, YanshouDb } from '../store/db';
import { STROKES_MEDIA_TYPE } from '../protocol/strokes';
import { reconcile } from './reconcile';
import { cachedLimits, refreshLimits } from './limits';
import type { UploadLimits } from './sniff';
import { uploadProgress } from './state';

export const CHUNK_CONTENT_TYPE = 'application/offset+octet-stream';

export interface UploadReport {
  completed: number;
  refused: number;
  /** Uploads that failed and wait for their back-off. */
  failed: number;
  /** The run stopped because the server could not be reached. */
  offline: boolean;
}

/** Back-off after `attempts` failures: 10 s, 20 s, 40 s … up to 30 minutes. */
export function backoffMs(attempts: number): number {
  return Math.min(30 * 60_000, 10_000 * 2 ** Math.max(0, attempts - 1));
}

interface UploadView {
  id?: string;
  offset: number;
  size: number;
  sha256: string;
  complete: boolean;
}

function readUploadView(text: string): UploadView {
  const v: unknown = JSON.parse(text);
  if (typeof v !== 'object' || v === null) throw new NetworkError('上传接口的响应无效');
  const o = v as Record<string, unknown>;
  if (typeof o['offset'] !== 'number' || typeof o['complete'] !== 'boolean') {
    throw new NetworkError('上传接口的响应无效');
  }
  return {
    id: typeof o['id'] === 'string' ? o['id'] : undefined,
    offset: o['offset'],
    size: typeof o['size'] === 'number' ? o['size'] : 0,
    sha256: typeof o['sha256'] === 'string' ? o['sha256'] : '',
    complete: o['complete'],
  };
}

/** A refusal the server will repeat for this file: mark it refused, never retry. */
function isRefusal(e: unknown): e is ApiError {
  return e instanceof ApiError && (e.status === 422 || e.status === 413 || e.status === 400 || e.status === 415);
}

const REFUSAL_WORDS: Record<string, string> = {
  photo_refused: '服务器拒收此照片',
  hash_mismatch: '文件校验不一致',
  upload_too_large: '文件超过服务器允许的大小',
  invalid_request: '服务器不接受此文件',
  unsupported_media_type: '服务器不接受此文件类型',
};

function refusalText(e: ApiError): string {
  return `${REFUSAL_WORDS[e.code] ?? '服务器拒收'}，请移除后重新拍摄（服务器说明：${e.message}）`;
}

async function markComplete(db: YanshouDb, row: UploadRow): Promise<void> {
  await db.transaction('rw', [db.uploads, db.photos], async () => {
    const photo = await db.photos.get(row.sha256);
    await db.uploads.update(row.key, {
      state: 'complete',
      offset: photo?.size ?? row.offset,
      message: null,
      attempts: 0,
    });
    // Drop the original once the server holds it for every record the photo is on.
    const all = await db.uploads.where('sha256').equals(row.sha256).toArray();
    if (photo && photo.bytes !== null && all.every((u) => u.state === 'complete')) {
      await db.photos.update(row.sha256, { bytes: null });
    }
  });
  delete uploadProgress[row.key];
}

/** One file to send, from where the server left it (a photo or a handwritten signature). */
interface Transfer {
  /** The progress key (`<record>/<sha256>` for a photo). */
  key: string;
  /** The record (round id) the upload is for. */
  entity: string;
  sha256: string;
  size: number;
  contentType: string;
  bytes: ArrayBuffer;
  uploadId: string | null;
  offset: number;
  /** Stores the server's upload id and acknowledged offset. */
  save: (uploadId: string | null, offset: number) => Promise<void>;
}

function photoTransfer(db: YanshouDb, row: UploadRow, photo: PhotoRow): Transfer {
  const bytes = photo.bytes;
  if (bytes === null) throw new Error('照片原图已不在手机上');
  return {
    key: row.key,
    entity: row.entity,
    sha256: row.sha256,
    size: photo.size,
    contentType: photo.contentType,
    bytes,
    uploadId: row.uploadId,
    offset: row.offset,
    save: async (uploadId, offset) => {
      await db.uploads.update(row.key, { uploadId, offset, attempts: 0, message: null });
    },
  };
}

/** Sends one file from where the server left it; resolves when complete. */
async function uploadOne(db: YanshouDb, t: Transfer, limits: UploadLimits): Promise<void> {
  const bytes = t.bytes;
  const size = t.size;
  let uploadId = t.uploadId;
  let offset = t.offset;
  uploadProgress[t.key] = offset;
  const save = async () => {
    await t.save(uploadId, offset);
    uploadProgress[t.key] = offset;
  };
  let restarted = false;
  // Each step makes progress or learns the server's offset; a server that keeps answering
  // without either would otherwise loop for ever.
  for (let stuck = 0; stuck < 5; ) {
    if (uploadId === null) {
      const res = await authed(db, (token) =>
        requestRaw('/uploads', {
          method: 'POST',
          body: { sha256: t.sha256, size, content_type: t.contentType, record_id: t.entity },
          token,
        }),
      );
      const view = readUploadView(res.text);
      if (view.complete || res.status === 200) return; // the server already holds these bytes
      if (!view.id) throw new NetworkError('上传接口没有返回上传编号');
      uploadId = view.id;
      offset = view.offset;
      await save();
      continue;
    }
    const id = uploadId;
    try {
      if (offset < size) {
        const end = Math.min(size, offset + limits.chunk_max_bytes);
        const chunk = new Uint8Array(bytes.slice(offset, end));
        const at = offset;
        const res = await authed(db, (token) =>
          requestRaw(`/uploads/${encodeURIComponent(id)}`, {
            method: 'PATCH',
            bytes: { data: chunk, contentType: CHUNK_CONTENT_TYPE },
            headers: { 'upload-offset': String(at) },
            token,
            timeoutMs: 120_000,
          }),
        );
        const next = Number(res.headers.get('upload-offset') ?? String(end));
        offset = Number.isSafeInteger(next) && next >= 0 ? next : end;
        if (offset <= at) stuck++;
        await save();
        continue;
      }
      await authed(db, (token) =>
        requestRaw(`/uploads/${encodeURIComponent(id)}/finish`, { method: 'POST', token, timeoutMs: 120_000 }),
      );
      return;
    } catch (e) {
      if (e instanceof ApiError && e.status === 409 && e.uploadOffset !== null) {
        // Not the server's offset (a chunk whose answer was lost, say): continue from its own.
        stuck++;
        offset = Math.min(e.uploadOffset, size);
        await save();
        continue;
      }
      if (e instanceof ApiError && e.code === 'hash_mismatch' && !restarted) {
        // The server lost parts of the upload (it says to start a new one): once, from zero.
        // Twice means the bytes really are not what was declared: then it is a refusal.
        restarted = true;
        uploadId = null;
        offset = 0;
        await save();
        continue;
      }
      if (e instanceof ApiError && e.status === 404) {
        // The server no longer knows this upload (expired, or another server's): start again.
        stuck++;
        uploadId = null;
        offset = 0;
        await save();
        continue;
      }
      throw e;
    }
  }
  throw new Error('上传没有进展，稍后重试');
}

export interface RunOptions {
  now?: () => number;
}

/** Uploads every pending photo it may now; never throws for one photo's failure. */
export async function runUploads(db: YanshouDb, opts: RunOptions = {}): Promise<UploadReport> {
  try {
    return await run(db, opts);
  } finally {
    for (const key of Object.keys(uploadProgress)) delete uploadProgress[key];
  }
}

async function run(db: YanshouDb, opts: RunOptions): Promise<UploadReport> {
  const now = opts.now ?? Date.now;
  const report: UploadReport = { completed: 0, refused: 0, failed: 0, offline: false };
  let limits: UploadLimits;
  try {
    limits = await refreshLimits(db);
  } catch (e) {
    if (e instanceof NetworkError) {
      report.offline = true;
      return report;
    }
    if (!(e instanceof ApiError)) throw e;
    limits = await cachedLimits(db);
  }
  const entities = new Set((await db.uploads.toArray()).map((r) => r.entity));
  for (const entity of entities) await reconcile(db, entity);
  const rows = (await db.uploads.where('state').equals('pending').toArray()).sort((a, b) => a.createdAt - b.createdAt);
  for (const first of rows) {
    const row = await db.uploads.get(first.key);
    if (!row || row.state !== 'pending' || row.nextAt > now()) continue;
    const photo = await db.photos.get(row.sha256);
    if (!photo) continue;
    try {
      await uploadOne(db, photoTransfer(db, row, photo), limits);
      await markComplete(db, row);
      report.completed++;
    } catch (e) {
      if (e instanceof NetworkError) {
        report.offline = true;
        return report; // the acknowledged offset is stored; the next run resumes there
      }
      if (isRefusal(e)) {
        await db.uploads.update(row.key, { state: 'refused', message: refusalText(e) });
        delete uploadProgress[row.key];
        report.refused++;
        continue;
      }
      // The session: the sync loop says so and the person logs in again; nothing is lost.
      if (e instanceof LoginRequired || (e instanceof ApiError && e.status === 401)) throw e;
      const current = await db.uploads.get(row.key);
      const attempts = (current?.attempts ?? 0) + 1;
      await db.uploads.update(row.key, { attempts, nextAt: now() + backoffMs(attempts), message: describeError(e) });
      report.failed++;
    }
  }
  return report;
}

/**
 * Uploads every handwritten signature (strokes blob, PROTOCOL.md §14) still pending, by the
 * same resumable upload: the sync loop runs this **before** it pushes, because the server
 * refuses a signature whose strokes it does not hold. A blob the server refuses is marked so
 * with its reason (its op then goes and comes back rejected, and the person signs again).
 */
export async function runStrokeUploads(db: YanshouDb, opts: RunOptions = {}): Promise<UploadReport> {
  const now = opts.now ?? Date.now;
  const report: UploadReport = { completed: 0, refused: 0, failed: 0, offline: false };
  const rows = await db.strokes.where('state').equals('pending').toArray();
  if (rows.length === 0) return report;
  let limits: UploadLimits;
  try {
    limits = await refreshLimits(db);
  } catch (e) {
    if (e instanceof NetworkError) {
      report.offline = true;
      return report;
    }
    if (!(e instanceof ApiError)) throw e;
    limits = await cachedLimits(db);
  }
  rows.sort((a, b) => a.createdAt - b.createdAt);
  try {
    for (const first of rows) {
      const row = await db.strokes.get(first.sha256);
      if (!row || row.state !== 'pending' || row.nextAt > now()) continue;
      try {
        await uploadOne(db, strokesTransfer(db, row), limits);
        await db.strokes.update(row.sha256, { state: 'complete', offset: row.size, message: null, attempts: 0 });
        report.completed++;
      } catch (e) {
        if (e instanceof NetworkError) {
          report.offline = true;
          return report;
        }
        if (isRefusal(e)) {
          await db.strokes.update(row.sha256, {
            state: 'refused',
            message: `服务器拒收签字笔迹（服务器说明：${e.message}），请重新签字`,
          });
          report.refused++;
          continue;
        }
        if (e instanceof LoginRequired || (e instanceof ApiError && e.status === 401)) throw e;
        const attempts = ((await db.strokes.get(row.sha256))?.attempts ?? 0) + 1;
        await db.strokes.update(row.sha256, { attempts, nextAt: now() + backoffMs(attempts), message: describeError(e) });
        report.failed++;
      }
    }
  } finally {
    for (const key of Object.keys(uploadProgress)) if (key.startsWith('strokes/')) delete uploadProgress[key];
  }
  return report;
}

function strokesTransfer(db: YanshouDb, row: StrokesRow): Transfer {
  return {
    key: `strokes/${row.sha256}`,
    entity: row.entity,
    sha256: row.sha256,
    size: row.size,
    contentType: STROKES_MEDIA_TYPE,
    bytes: row.bytes,
    uploadId: row.uploadId,
    offset: row.offset,
    save: async (uploadId, offset) => {
      await db.strokes.update(row.sha256, { uploadId, offset, attempts: 0, message: null });
    },
  };
}
