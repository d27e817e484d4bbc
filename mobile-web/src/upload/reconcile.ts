/**
 * Which photos a record names (its evidence set fields, PROTOCOL.md §13), and the upload rows
 * kept in line with that: a photo taken off its item before upload is not sent.
 */
import { readSignature, type EntityState, type Statement, type Value } from '../protocol';
import type { YanshouDb } from '../store/db';
import { loadRecord } from '../store/replica';

/** The SHA-256 statements of the photos an evidence set holds (its elements' attestations). */
export function photosIn(view: EntityState, field: string): { element: Value; statement: Statement }[] {
  const out: { element: Value; statement: Statement }[] = [];
  for (const el of Object.values(view.sets[field]?.elements ?? {})) {
    const sig = readSignature(el.value);
    if (typeof sig !== 'string' && sig.statement.purpose === 'photo') {
      out.push({ element: el.value, statement: sig.statement });
    }
  }
  return out;
}

/** The SHA-256 of every photo the evidence fields of a record name. */
export function namedPhotos(state: EntityState | null): Set<string> {
  const out = new Set<string>();
  if (!state) return out;
  for (const field of Object.keys(state.sets)) {
    if (!field.endsWith('.photos')) continue;
    for (const p of photosIn(state, field)) {
      const sha = p.statement['sha256'];
      if (typeof sha === 'string') out.add(sha);
    }
  }
  return out;
}

/**
 * Brings the upload rows of `entity` in line with what its view names: a named photo is
 * `pending` (unless complete or refused), one no longer named is `dropped`.
 */
export async function reconcile(db: YanshouDb, entity: string): Promise<void> {
  await db.transaction('rw', [db.entities, db.outbox, db.views, db.uploads], async () => {
    const { view } = await loadRecord(db, entity);
    const named = namedPhotos(view);
    const rows = await db.uploads.where('entity').equals(entity).toArray();
    for (const r of rows) {
      if (r.state === 'pending' && !named.has(r.sha256)) await db.uploads.update(r.key, { state: 'dropped' });
      if (r.state === 'dropped' && named.has(r.sha256)) await db.uploads.update(r.key, { state: 'pending' });
    }
  });
}

