/**
 * The phone's replica of the records (PROTOCOL.md §10), persisted in IndexedDB.
 *
 * - The **confirmed** state of each record lives in `entities` (pulled changes only).
 * - Every edit becomes an op in `outbox` at once, in the same IndexedDB transaction that moves
 *   the series (`nextSeq`) and the clock: an edit is either fully saved or not at all.
 * - The **view** the screens show is the confirmed state with the record's outbox ops re-applied
 *   by the protocol's own merge (allow-all policy); ops the merge would reject are skipped.
 * - A sync response is applied in one transaction: results move outbox ops to acknowledged,
 *   drop them, or move them to `rejections` with the server's reason; changes above the cursor
 *   are applied in order; acknowledged ops at or below the new cursor leave the outbox.
 *
 * Work per edit and per response is proportional to the record touched and the changes
 * received, never to everything on the phone.
 */
import {
  applyChangeToEntity,
  merge,
  newClock,
  observe,
  tick,
  type Change,
  type Clock,
  type EntityState,
  type Op,
  type OpResult,
  type SyncResponse,
  type Value,
} from '../protocol';
import { mineIdOf, StorageError, type OutboxRow, type YanshouDb } from './db';

export interface ReplicaMeta {
  deviceId: string;
  nextSeq: number;
  cursor: number;
  clock: Clock;
}

export async function loadMeta(db: YanshouDb, deviceId: string): Promise<ReplicaMeta> {
  const row = await db.meta.get('replica');
  const m = row?.value as ReplicaMeta | undefined;
  if (m && m.deviceId === deviceId) return m;
  return { deviceId, nextSeq: 1, cursor: 0, clock: newClock() };
}

async function saveMeta(db: YanshouDb, m: ReplicaMeta): Promise<void> {
  await db.meta.put({ key: 'replica', value: m });
}

/** Re-applies pending ops to a confirmed state (allow-all policy, commit_seq 0). */
export function viewOf(confirmed: EntityState | null, pending: readonly OutboxRow[]): EntityState | null {
  // merge is pure: it returns new objects and never modifies the confirmed state.
  let state = confirmed;
  for (const row of pending) {
    const r = merge(state, row.op, { commitSeq: 0 });
    if (r.outcome === 'applied' || r.outcome === 'conflict') state = r.state;
  }
  return state;
}

export interface RecordView {
  confirmed: EntityState | null;
  view: EntityState | null;
  pending: OutboxRow[];
}

export async function loadRecord(db: YanshouDb, entity: string): Promise<RecordView> {
  return db.transaction('r', [db.entities, db.outbox, db.views], async () => {
    const row = await db.entities.get(entity);
    const pending = await db.outbox.where('entity').equals(entity).sortBy('seq');
    const confirmed = row?.state ?? null;
    const cached = pending.length > 0 ? await db.views.get(entity) : undefined;
    return { confirmed, view: cached?.state ?? viewOf(confirmed, pending), pending };
  });
}

/** Rebuilds the stored view of `entity` from its confirmed state and remaining outbox ops. */
async function rebuildView(db: YanshouDb, entity: string, confirmed: EntityState | null): Promise<void> {
  const pending = await db.outbox.where('entity').equals(entity).sortBy('seq');
  if (pending.length === 0) {
    await db.views.delete(entity);
    return;
  }
  const view = viewOf(confirmed, pending);
  if (view) await db.views.put({ id: entity, state: view });
  else await db.views.delete(entity);
}

/** An edit the phone refuses before it becomes an op (nothing is stored, no seq is used). */
export class LocalRefusal extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'LocalRefusal';
  }
}

export type OpBodyInput =
  | { kind: 'set'; field: string; value: Value }
  | { kind: 'resolve'; field: string; value: Value; chosen_op: string | null; reason: string };

function sectionOf(field: string): string {
  const i = field.indexOf('/');
  return i < 0 ? '' : field.slice(0, i);
}

/**
 * Makes one op on `entity` and stores it in the outbox, in one transaction with the series and
 * the clock. Refuses locally what the server would refuse against this phone's view.
 */
export async function makeOp(
  db: YanshouDb,
  deviceId: string,
  entity: string,
  body: OpBodyInput,
  now: number = Date.now(),
): Promise<Op> {
  try {
    return await db.transaction('rw', [db.meta, db.entities, db.outbox, db.views], async () => {
      const meta = await loadMeta(db, deviceId);
      const row = await db.entities.get(entity);
      const confirmed = row?.state ?? null;
      const cached = await db.views.get(entity);
      const view =
        cached?.state ??
        viewOf(confirmed, await db.outbox.where('entity').equals(entity).sortBy('seq'));
      if (!view) throw new LocalRefusal('unknown_entity', '本机还没有这份记录，请先同步');
      if (view.tombstoned) throw new LocalRefusal('entity_tombstoned', '这份记录已被删除');
      const section = sectionOf(body.field);
      if (view.signatures[section]) {
        throw new LocalRefusal('section_signed', '本部分已签字，不能再修改');
      }
      const confirmedField = confirmed?.fields[body.field];
      const baseRev = confirmedField?.rev ?? 0;
      if (body.kind === 'set' && confirmedField?.conflict) {
        throw new LocalRefusal('conflict_unresolved', '此项有冲突，请先选择采用哪个值');
      }
      const clock = tick(meta.clock, now);
      const common = {
        id: crypto.randomUUID(),
        device: deviceId,
        seq: meta.nextSeq,
        hlc: clock.last,
        entity,
      };
      const op: Op =
        body.kind === 'set'
          ? { ...common, kind: 'set', field: body.field, value: body.value, base_rev: baseRev }
          : {
              ...common,
              kind: 'resolve',
              field: body.field,
              value: body.value,
              base_rev: baseRev,
              chosen_op: body.chosen_op,
              reason: body.reason,
            };
      const dry = merge(view, op, { commitSeq: 0 });
      if (dry.outcome === 'rejected') throw new LocalRefusal(dry.code, dry.message);
      await db.outbox.add({ seq: op.seq, entity, op, ackedAt: null, madeAt: now });
      if (dry.outcome !== 'duplicate') await db.views.put({ id: entity, state: dry.state });
      await saveMeta(db, { ...meta, nextSeq: meta.nextSeq + 1, clock });
      return op;
    });
  } catch (e) {
    if (e instanceof LocalRefusal) throw e;
    throw StorageError.from(e);
  }
}

/** Ops to send: unacknowledged outbox ops, oldest first. */
export async function queuedOps(db: YanshouDb, limit: number): Promise<Op[]> {
  const rows = await db.outbox
    .orderBy('seq')
    .filter((r) => r.ackedAt === null)
    .limit(limit)
    .toArray();
  return rows.map((r) => r.op);
}

export interface ApplyReport {
  applied: number;
  conflicts: number;
  rejected: number;
  changes: number;
  cursor: number;
  /** HLC drift reports (a remote clock far ahead of this phone's). */
  drift: boolean;
}

/** Applies a sync response in one transaction (PROTOCOL.md §10, "Response"). */
export async function applyResponse(
  db: YanshouDb,
  deviceId: string,
  sent: readonly Op[],
  response: SyncResponse,
  now: number = Date.now(),
): Promise<ApplyReport> {
  const report: ApplyReport = {
    applied: 0,
    conflicts: 0,
    rejected: 0,
    changes: 0,
    cursor: 0,
    drift: false,
  };
  const sentById = new Map(sent.map((op) => [op.id, op]));
  try {
    await db.transaction('rw', [db.meta, db.entities, db.outbox, db.rejections, db.views], async () => {
      const meta = await loadMeta(db, deviceId);
      const stale = new Set<string>();
      for (const result of response.results) {
        const entity = await applyResult(db, sentById, result, now, report);
        if (entity) stale.add(entity);
      }
      const touched = new Map<string, EntityState | null>();
      let clock = meta.clock;
      let cursor = meta.cursor;
      for (const change of response.changes) {
        if (change.commit_seq <= cursor) continue;
        const state = touched.has(change.entity)
          ? (touched.get(change.entity) ?? null)
          : ((await db.entities.get(change.entity))?.state ?? null);
        touched.set(change.entity, applyOne(state, change));
        const o = observe(clock, change.hlc, now);
        clock = o.clock;
        if (o.drift !== null) report.drift = true;
        cursor = change.commit_seq;
        report.changes++;
      }
      cursor = Math.max(cursor, response.cursor);
      for (const [id, state] of touched) {
        if (state) await db.entities.put({ id, mineId: mineIdOf(state), state });
      }
      // Acknowledged ops at or below the cursor are now part of the confirmed state.
      const done = await db.outbox
        .filter((r) => r.ackedAt !== null && r.ackedAt <= cursor)
        .toArray();
      await db.outbox.bulkDelete(done.map((r) => r.seq));
      for (const r of done) stale.add(r.entity);
      for (const id of touched.keys()) stale.add(id);
      for (const id of stale) {
        const confirmed = touched.has(id)
          ? (touched.get(id) ?? null)
          : ((await db.entities.get(id))?.state ?? null);
        await rebuildView(db, id, confirmed);
      }
      report.cursor = cursor;
      await saveMeta(db, { ...meta, cursor, clock });
    });
  } catch (e) {
    throw StorageError.from(e);
  }
  return report;
}

function applyOne(state: EntityState | null, change: Change): EntityState {
  return applyChangeToEntity(state, change);
}

async function applyResult(
  db: YanshouDb,
  sentById: Map<string, Op>,
  result: OpResult,
  now: number,
  report: ApplyReport,
): Promise<string | null> {
  const op = sentById.get(result.op);
  if (!op) return null; // not ours in this request: ignore (§10)
  const row = await db.outbox.get(op.seq);
  if (!row || row.op.id !== op.id) return null; // no longer queued
  switch (result.status) {
    case 'applied':
    case 'conflict':
      await db.outbox.update(op.seq, { ackedAt: result.commit_seq });
      if (result.status === 'applied') report.applied++;
      else report.conflicts++;
      break;
    case 'duplicate':
      await db.outbox.delete(op.seq);
      break;
    case 'rejected':
      await db.outbox.delete(op.seq);
      await db.rejections.put({
        id: op.id,
        entity: op.entity,
        op,
        code: result.code,
        message: result.message,
        at: now,
      });
      report.rejected++;
      break;
    case 'gap':
      return null;
  }
  return op.entity;
}

/** Every op the phone has not had confirmed, and every rejection, for the rescue file. */
export async function rescueExport(db: YanshouDb): Promise<{
  outbox: OutboxRow[];
  rejections: unknown[];
}> {
  return db.transaction('r', [db.outbox, db.rejections], async () => ({
    outbox: await db.outbox.orderBy('seq').toArray(),
    rejections: await db.rejections.toArray(),
  }));
}
