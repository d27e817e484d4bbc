/**
 * The phone's database (IndexedDB through Dexie): one table per concern.
 *
 * - `meta`: small keyed records — the session, the device (its non-extractable key pair is
 *   stored as `CryptoKey` objects), the replica's series position (`nextSeq`, `cursor`, clock),
 *   the sync status and the user's preferences;
 * - `entities`: the **confirmed** state of each record (pulled changes only, PROTOCOL.md §10);
 * - `outbox`: the ops this device made and the server has not yet confirmed, by `seq`;
 * - `views`: the view of each record that has pending ops (derived; rebuilt on sync);
 * - `rejections`: ops the server refused, kept with the reason until the person dismisses them;
 * - `mines`, `rounds`, `templates`, `org`: what the server lists, kept for offline use;
 * - `photos`: evidence photos taken or picked on this phone, by SHA-256 — the original bytes
 *   until the server confirmed the upload complete, and a small thumbnail kept for offline
 *   viewing (PROTOCOL.md §13);
 * - `uploads`: one resumable upload per (record, photo): the server's upload id, the offset it
 *   acknowledged, the state and the server's reason when it refused the file.
 * - `strokes`: handwritten signatures (PROTOCOL.md §14), by SHA-256 of their bytes — the blob
 *   made on this phone (stored with the op that names it, and kept: it is drawn under the
 *   signature) or fetched to show someone else's, and the state of its resumable upload.
 *
 * Schema changes are new `version(n)` blocks with an `upgrade` that moves the data; never edit
 * an old block (phones in the field still have that version).
 */
import Dexie, { type EntityTable } from 'dexie';
import type { Department, Mine, MineDetail, Round, Template, Township } from '../api/types';
import type { EntityState, Op } from '../protocol';

export interface MetaRow {
  key: string;
  value: unknown;
}

export interface EntityRow {
  id: string;
  /** The mine the record belongs to (header field `mine_id`), for a mine's page. */
  mineId: string | null;
  state: EntityState;
}

/** The view of a record with pending ops (confirmed + outbox re-applied), kept so an edit
 * merges one op instead of replaying the whole outbox. Derived data: rebuilt from `entities`
 * and `outbox` whenever a sync response touches the record. */
export interface ViewRow {
  id: string;
  state: EntityState;
}

export interface OutboxRow {
  seq: number;
  entity: string;
  op: Op;
  /** Commit sequence the server acknowledged the op at (kept until the cursor passes it). */
  ackedAt: number | null;
  /** Device time the op was made (ms). */
  madeAt: number;
}

export interface RejectionRow {
  /** The op id. */
  id: string;
  entity: string;
  op: Op;
  code: string;
  message: string;
  /** Device time the rejection arrived (ms). */
  at: number;
}

export interface MineRow {
  id: string;
  townshipId: string;
  mine: Mine;
  detail: MineDetail | null;
  fetchedAt: number;
  /** When `detail` was fetched (ms; absent for rows stored before this field). */
  detailAt?: number;
}

export interface RoundRow {
  id: string;
  mineId: string;
  round: Round;
}

export interface TemplateRow {
  ref: string;
  template: Template;
}

export interface OrgRow {
  key: 'departments' | 'townships';
  value: Department[] | Township[];
}

/** A photo on the phone, by content (the same bytes on two items are one row). */
export interface PhotoRow {
  sha256: string;
  size: number;
  contentType: 'image/jpeg' | 'image/png';
  /** The original file; `null` once every upload of it is complete (the server keeps it). */
  bytes: ArrayBuffer | null;
  /** A small JPEG (about 240 px) for the item's list; `null` when the phone could not make one. */
  thumb: ArrayBuffer | null;
  /** Device time of capture (ms), as attested. */
  capturedAt: number;
}

/** `dropped`: taken off its item before it was uploaded (bytes kept; pending again if named again). */
export type UploadState = 'pending' | 'complete' | 'refused' | 'dropped';

/** The upload of one photo for one record (the server checks write rights per record). */
export interface UploadRow {
  /** `<record id>/<sha256>`. */
  key: string;
  entity: string;
  sha256: string;
  state: UploadState;
  /** The server's upload id once created (then chunks resume at `offset`). */
  uploadId: string | null;
  /** Bytes the server acknowledged. */
  offset: number;
  /** Why the server refused the file (shown), or the last transient error (retried). */
  message: string | null;
  /** Failed attempts since the last progress (for the back-off). */
  attempts: number;
  /** Not before this device time (ms): the back-off after a failure. */
  nextAt: number;
  createdAt: number;
}

/** `pending` until the server holds the blob; `refused` when it will not take it. */
export type StrokesState = 'pending' | 'complete' | 'refused';

/** A handwritten strokes blob and its upload (for the record it belongs to). */
export interface StrokesRow {
  sha256: string;
  /** The record the upload is for (for an opinion letter, the record of its round). */
  entity: string;
  size: number;
  /** The exact bytes the statement names (canonical JSON). */
  bytes: ArrayBuffer;
  state: StrokesState;
  uploadId: string | null;
  offset: number;
  message: string | null;
  attempts: number;
  nextAt: number;
  createdAt: number;
}

export function uploadKey(entity: string, sha256: string): string {
  return `${entity}/${sha256}`;
}

export const DB_NAME = 'yanshou';

export type YanshouDb = Dexie & {
  meta: EntityTable<MetaRow, 'key'>;
  entities: EntityTable<EntityRow, 'id'>;
  outbox: EntityTable<OutboxRow, 'seq'>;
  views: EntityTable<ViewRow, 'id'>;
  rejections: EntityTable<RejectionRow, 'id'>;
  mines: EntityTable<MineRow, 'id'>;
  rounds: EntityTable<RoundRow, 'id'>;
  templates: EntityTable<TemplateRow, 'ref'>;
  org: EntityTable<OrgRow, 'key'>;
  photos: EntityTable<PhotoRow, 'sha256'>;
  uploads: EntityTable<UploadRow, 'key'>;
  strokes: EntityTable<StrokesRow, 'sha256'>;
};

/**
 * Reads the record's mine from its header (`mine_id`), if present. An opinion letter names its
 * mine too, but it is not one of the mine's records (it is listed on its own): `null`.
 */
export function mineIdOf(state: EntityState): string | null {
  if (state.entity_type === 'opinion_letter') return null;
  const v = state.fields['mine_id']?.value;
  return typeof v === 'string' ? v : null;
}

/** Declares every schema version; exported so tests can open older versions. */
export function declareSchema(db: Dexie): void {
  // Version 1: the first release.
  db.version(1).stores({
    meta: '&key',
    entities: '&id',
    outbox: '&seq, entity',
    rejections: '&id, entity',
    mines: '&id, townshipId',
    rounds: '&id, mineId',
    templates: '&ref',
    org: '&key',
  });
  // Version 2: records indexed by their mine, so a mine's page reads only its records; views
  // of records with pending edits kept (an edit then costs one merge, not the whole outbox).
  db.version(2)
    .stores({ entities: '&id, mineId', views: '&id' })
    .upgrade(async (tx) => {
      await tx
        .table('entities')
        .toCollection()
        .modify((row: { state: EntityState; mineId?: string | null }) => {
          row.mineId = mineIdOf(row.state);
        });
    });
  // Version 3: evidence photos and their resumable uploads (new tables; nothing to move).
  db.version(3).stores({ photos: '&sha256', uploads: '&key, entity, sha256, state' });
  // Version 4: handwritten signatures (strokes blobs) and their uploads (a new table).
  db.version(4).stores({ strokes: '&sha256, state' });
}

export function openDb(name = DB_NAME): YanshouDb {
  const db = new Dexie(name) as YanshouDb;
  declareSchema(db);
  return db;
}

/** Whether an error from IndexedDB means the phone's storage is full. */
export function isQuotaError(e: unknown): boolean {
  if (e instanceof Error) {
    if (e.name === 'QuotaExceededError') return true;
    const inner = (e as { inner?: unknown }).inner;
    if (inner instanceof Error && inner.name === 'QuotaExceededError') return true;
  }
  return false;
}

/** A write the phone could not make; carries whether storage is full. */
export class StorageError extends Error {
  constructor(
    message: string,
    readonly quota: boolean,
  ) {
    super(message);
    this.name = 'StorageError';
  }

  static from(e: unknown): StorageError {
    if (e instanceof StorageError) return e;
    if (isQuotaError(e)) {
      return new StorageError('手机存储空间已满，无法保存。请清理空间后重试；已保存的内容不会丢失。', true);
    }
    const detail = e instanceof Error ? e.message : String(e);
    return new StorageError(`无法保存到手机：${detail}`, false);
  }
}
