/** What the screens read from the phone (never the network). */
import type { Department, MineDetail, Template, Township, User } from '../api/types';
import {
  LETTER_ENTITY_TYPE,
  OPINIONS_FIELD,
  letterStatus,
  onPanel,
  readLetter,
  type Letter,
  type LetterStatus,
  parseStrokes,
  readSignature,
  readStrokesRef,
  strokesRef,
  type EntityState,
  type StrokesBlob,
  type Value,
} from '../protocol';
import { utf8ToBytes } from '@noble/hashes/utils.js';
import type { YanshouDb, MineRow, PhotoRow, RejectionRow, UploadRow } from './db';
import { loadRecord, viewOf } from './replica';

export async function departments(db: YanshouDb): Promise<Department[]> {
  return ((await db.org.get('departments'))?.value as Department[] | undefined) ?? [];
}

export async function townships(db: YanshouDb): Promise<Township[]> {
  return ((await db.org.get('townships'))?.value as Township[] | undefined) ?? [];
}

export async function mines(db: YanshouDb): Promise<MineRow[]> {
  const rows = await db.mines.toArray();
  return rows.sort((a, b) => a.mine.name.localeCompare(b.mine.name, 'zh-CN'));
}

/** Number of acceptance records on the phone per mine (read from the index, not the records). */
export async function recordCounts(db: YanshouDb): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const key of await db.entities.orderBy('mineId').keys()) {
    if (typeof key === 'string') counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

export interface RecordSummary {
  id: string;
  mineId: string | null;
  roundNo: number | null;
  templateRef: string | null;
  disposition: string | null;
  view: EntityState;
  pendingOps: number;
  conflicts: number;
  signedSections: string[];
  /** Withdrawn by the county office (kept readable). */
  withdrawn: boolean;
}

function headerString(state: EntityState, key: string): string | null {
  const v = state.fields[key]?.value;
  return typeof v === 'string' ? v : null;
}

export function summarize(id: string, view: EntityState, pendingOps: number): RecordSummary {
  const roundNo = view.fields['round_no']?.value;
  return {
    id,
    mineId: headerString(view, 'mine_id'),
    roundNo: typeof roundNo === 'number' ? roundNo : null,
    templateRef: headerString(view, 'template'),
    disposition: headerString(view, 'disposition'),
    view,
    pendingOps,
    conflicts: Object.values(view.fields).filter((f) => f.conflict !== null).length,
    signedSections: Object.keys(view.signatures),
    withdrawn: view.tombstoned,
  };
}

export async function mineWithRecords(
  db: YanshouDb,
  mineId: string,
): Promise<{ mine: MineRow | null; detail: MineDetail | null; records: RecordSummary[] }> {
  const mine = (await db.mines.get(mineId)) ?? null;
  const rows = await db.entities.where('mineId').equals(mineId).toArray();
  const records: RecordSummary[] = [];
  for (const row of rows) {
    const pending = await db.outbox.where('entity').equals(row.id).sortBy('seq');
    const view = viewOf(row.state, pending);
    if (view) records.push(summarize(row.id, view, pending.length));
  }
  records.sort((a, b) => (b.roundNo ?? 0) - (a.roundNo ?? 0));
  return { mine, detail: mine?.detail ?? null, records };
}

export async function record(db: YanshouDb, id: string) {
  return loadRecord(db, id);
}

export async function cachedTemplate(db: YanshouDb, ref: string): Promise<Template | null> {
  return (await db.templates.get(ref))?.template ?? null;
}

/** The sections a user may write (mirrors the server's sync policy; the server decides). */
export function writableSections(user: User): Set<string> {
  switch (user.role) {
    case 'department_inspector':
      return new Set(user.department ? [user.department] : []);
    case 'township_officer':
      return new Set(['township']);
    case 'expert':
      return new Set(['experts']);
    default:
      return new Set();
  }
}

export interface OpenConflict {
  recordId: string;
  mineId: string | null;
  field: string;
  state: EntityState;
}

/** Every unresolved conflict on the phone's records. */
export async function openConflicts(db: YanshouDb): Promise<OpenConflict[]> {
  const out: OpenConflict[] = [];
  await db.entities.each((row) => {
    for (const [field, f] of Object.entries(row.state.fields)) {
      if (f.conflict) out.push({ recordId: row.id, mineId: row.mineId, field, state: row.state });
    }
  });
  return out;
}

/** The templates of the given records (those on the phone), by record id. */
export async function templatesOf(db: YanshouDb, recordIds: string[]): Promise<Map<string, Template>> {
  const out = new Map<string, Template>();
  const rows = await db.entities.bulkGet([...new Set(recordIds)]);
  for (const row of rows) {
    const ref = row?.state.fields['template']?.value;
    if (!row || typeof ref !== 'string') continue;
    const t = await cachedTemplate(db, ref);
    if (t) out.set(row.id, t);
  }
  return out;
}

export async function rejections(db: YanshouDb): Promise<RejectionRow[]> {
  return (await db.rejections.toArray()).sort((a, b) => b.at - a.at);
}

export async function dismissRejection(db: YanshouDb, id: string): Promise<void> {
  await db.rejections.delete(id);
}

/** This phone's photos of a record and their uploads, by SHA-256. */
export async function photosOf(
  db: YanshouDb,
  entity: string,
): Promise<{ photos: Map<string, PhotoRow>; uploads: Map<string, UploadRow> }> {
  return db.transaction('r', [db.photos, db.uploads], async () => {
    const uploads = await db.uploads.where('entity').equals(entity).toArray();
    const photos = await db.photos.bulkGet(uploads.map((u) => u.sha256));
    return {
      photos: new Map(photos.flatMap((p) => (p ? [[p.sha256, p] as const] : []))),
      uploads: new Map(uploads.map((u) => [u.sha256, u])),
    };
  });
}

export interface PendingUpload {
  upload: UploadRow;
  /** The record's mine, for the list. */
  mineName: string | null;
  /** The evidence fields of the record that name the photo (its items). */
  fields: string[];
  capturedAt: number | null;
}

/** Photos not yet uploaded, and photos the server refused, with their record's mine. */
export async function pendingUploads(db: YanshouDb): Promise<PendingUpload[]> {
  const rows = await db.uploads.where('state').anyOf('pending', 'refused').toArray();
  const views = new Map<string, EntityState | null>();
  for (const id of new Set(rows.map((r) => r.entity))) views.set(id, (await loadRecord(db, id)).view);
  const photos = await db.photos.bulkGet(rows.map((r) => r.sha256));
  return rows
    .map((upload, i) => {
      const view = views.get(upload.entity) ?? null;
      const name = view?.fields['mine_name']?.value;
      const fields = Object.entries(view?.sets ?? {})
        .filter(
          ([k, set]) =>
            k.endsWith('.photos') &&
            Object.values(set.elements).some((e) => {
              const sig = readSignature(e.value);
              return typeof sig !== 'string' && sig.statement['sha256'] === upload.sha256;
            }),
        )
        .map(([k]) => k);
      return {
        upload,
        mineName: typeof name === 'string' ? name : null,
        fields,
        capturedAt: photos[i]?.capturedAt ?? null,
      };
    })
    .sort((a, b) => a.upload.createdAt - b.upload.createdAt);
}

/** The handwriting every signature of a record (or letter) names, by SHA-256. */
export function strokesNamedIn(view: EntityState | null): Set<string> {
  const out = new Set<string>();
  if (!view) return out;
  const add = (v: Value) => {
    const sig = readSignature(v);
    const ref = typeof sig === 'string' ? null : readStrokesRef(sig.statement);
    if (ref) out.add(ref.sha256);
  };
  for (const s of Object.values(view.signatures)) add(s.signature);
  for (const w of view.withdrawals ?? []) add(w.signature.signature);
  for (const el of Object.values(view.sets[OPINIONS_FIELD]?.elements ?? {})) add(el.value);
  return out;
}

/**
 * The handwriting for the signatures of `view`, by SHA-256: read from IndexedDB; what another
 * device drew is fetched from the server (`GET /strokes/{sha256}`) when `fetchMissing` and kept
 * on the phone, after checking that its bytes hash to the name the signature gives (offline or
 * on any failure it is simply not shown yet).
 */
export async function strokesOf(
  db: YanshouDb,
  view: EntityState | null,
  fetchMissing?: (sha256: string) => Promise<string>,
): Promise<Map<string, StrokesBlob>> {
  const shas = [...strokesNamedIn(view)];
  const rows = await db.strokes.bulkGet(shas);
  const out = new Map<string, StrokesBlob>();
  for (const row of rows) {
    const blob = row ? parseStrokes(row.bytes) : null;
    if (row && blob) out.set(row.sha256, blob);
  }
  if (fetchMissing && view) {
    for (const sha of shas.filter((s) => !out.has(s))) {
      try {
        const bytes = utf8ToBytes(await fetchMissing(sha));
        const blob = parseStrokes(bytes);
        if (!blob || strokesRef(bytes).sha256 !== sha) continue;
        const copy = new Uint8Array(new ArrayBuffer(bytes.length));
        copy.set(bytes);
        await db.strokes.put({
          sha256: sha,
          entity: view.id,
          size: bytes.length,
          bytes: copy.buffer,
          state: 'complete',
          uploadId: null,
          offset: bytes.length,
          message: null,
          attempts: 0,
          nextAt: 0,
          createdAt: Date.now(),
        });
        out.set(sha, blob);
      } catch {
        // Offline, signed out or not on the server yet: shown the next time.
      }
    }
  }
  return out;
}

export interface LetterSummary {
  letter: Letter;
  status: LetterStatus;
  /** This phone has a word on it not yet confirmed by the server. */
  pending: boolean;
}

/** The opinion letters on the phone whose panel names `user` (their views: pending words count). */
export async function lettersFor(db: YanshouDb, user: string): Promise<LetterSummary[]> {
  const rows = await db.entities.filter((r) => r.state.entity_type === LETTER_ENTITY_TYPE).toArray();
  const out: LetterSummary[] = [];
  for (const row of rows) {
    const pending = await db.outbox.where('entity').equals(row.id).sortBy('seq');
    const view = viewOf(row.state, pending);
    if (!view || view.tombstoned) continue;
    const letter = readLetter(view);
    if (!onPanel(letter, user)) continue;
    out.push({ letter, status: letterStatus(letter, user), pending: pending.length > 0 });
  }
  const order: Record<LetterStatus, number> = { review: 0, resign: 1, declined: 2, signed: 3, issued: 4 };
  return out.sort((a, b) => order[a.status] - order[b.status] || b.letter.date.localeCompare(a.letter.date));
}
