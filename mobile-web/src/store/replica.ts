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
import type { Table } from 'dexie';
import {
  applyChangeToEntity,
  canonical,
  conflictedField,
  sectionHash,
  strokesNamedBy,
  merge,
  newClock,
  observe,
  tick,
  type Clock,
  type EntityState,
  type Op,
  type SyncResponse,
  type Value,
} from '../protocol';
import {
  mineIdOf,
  StorageError,
  type EntityRow,
  type OutboxRow,
  type RejectionRow,
  type ViewRow,
  type YanshouDb,
} from './db';

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
  | { kind: 'resolve'; field: string; value: Value; chosen_op: string | null; reason: string }
  | { kind: 'add'; field: string; element: Value }
  | { kind: 'remove'; field: string; element: Value }
  | { kind: 'sign'; section: string; content_hash: string; signature: Value }
  | { kind: 'withdraw'; section: string; reason: string };

/**
 * More writes that belong to an op (a photo's bytes and its upload with the `add` that names
 * it): made in the op's own transaction, so both are stored or neither.
 */
export interface AlsoWrite {
  tables: Table[];
  write: (op: Op) => Promise<void>;
}

function sectionOf(field: string): string {
  const i = field.indexOf('/');
  return i < 0 ? '' : field.slice(0, i);
}

/** What the server would refuse against this phone's view, in the person's words. */
function refuseLocally(view: EntityState, body: OpBodyInput): void {
  switch (body.kind) {
    case 'sign': {
      if (view.signatures[body.section]) throw new LocalRefusal('already_signed', '本部分已签字');
      if (conflictedField(view, body.section) !== null) {
        throw new LocalRefusal('section_conflicted', '本部分有未解决的冲突，请先解决再签字');
      }
      if (sectionHash(view, body.section) !== body.content_hash) {
        throw new LocalRefusal('hash_mismatch', '签字期间内容已变化，请重新核对后再签字');
      }
      return;
    }
    case 'withdraw':
      if (!view.signatures[body.section]) throw new LocalRefusal('not_signed', '本部分尚未签字，无可撤回');
      if (body.reason.trim() === '') throw new LocalRefusal('invalid_op', '请填写撤回签字的原因');
      return;
    default:
      if (view.signatures[sectionOf(body.field)]) {
        throw new LocalRefusal('section_signed', '本部分已签字，不能再修改');
      }
  }
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
  also?: AlsoWrite,
): Promise<Op> {
  try {
    const tables: Table[] = [db.meta, db.entities, db.outbox, db.views, ...(also?.tables ?? [])];
    return await db.transaction('rw', tables, async () => {
      const meta = await loadMeta(db, deviceId);
      const row = await db.entities.get(entity);
      const confirmed = row?.state ?? null;
      const cached = await db.views.get(entity);
      const view =
        cached?.state ??
        viewOf(confirmed, await db.outbox.where('entity').equals(entity).sortBy('seq'));
      if (!view) throw new LocalRefusal('unknown_entity', '本机还没有这份记录，请先同步');
      if (view.tombstoned) throw new LocalRefusal('entity_tombstoned', '这份记录已被删除');
      refuseLocally(view, body);
      const confirmedField = 'field' in body ? confirmed?.fields[body.field] : undefined;
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
      let op: Op;
      switch (body.kind) {
        case 'set':
          op = { ...common, kind: 'set', field: body.field, value: body.value, base_rev: baseRev };
          break;
        case 'resolve':
          op = {
            ...common,
            kind: 'resolve',
            field: body.field,
            value: body.value,
            base_rev: baseRev,
            chosen_op: body.chosen_op,
            reason: body.reason,
          };
          break;
        case 'add':
          op = { ...common, kind: 'add', field: body.field, element: body.element };
          break;
        case 'remove': {
          // The adds of this element this phone sees (its own pending ones included).
          const el = view.sets[body.field]?.elements[canonical(body.element)];
          if (!el) throw new LocalRefusal('not_in_set', '这一项已不在记录中');
          op = { ...common, kind: 'remove', field: body.field, element: body.element, observed: [...el.tags] };
          break;
        }
        case 'sign':
          op = {
            ...common,
            kind: 'sign',
            section: body.section,
            content_hash: body.content_hash,
            signature: body.signature,
          };
          break;
        case 'withdraw':
          op = { ...common, kind: 'withdraw', section: body.section, reason: body.reason };
          break;
      }
      const dry = merge(view, op, { commitSeq: 0 });
      if (dry.outcome === 'rejected') throw new LocalRefusal(dry.code, dry.message);
      await db.outbox.add({ seq: op.seq, entity, op, ackedAt: null, madeAt: now });
      if (also) await also.write(op);
      if (dry.outcome !== 'duplicate') await db.views.put({ id: entity, state: dry.state });
      await saveMeta(db, { ...meta, nextSeq: meta.nextSeq + 1, clock });
      return op;
    });
  } catch (e) {
    if (e instanceof LocalRefusal) throw e;
    throw StorageError.from(e);
  }
}

/**
 * Ops to send: unacknowledged outbox ops, oldest first — up to, not including, the first op
 * naming a handwritten signature whose upload is still pending (PROTOCOL.md §14: the server
 * refuses a signature whose strokes it does not hold, and the series must stay contiguous).
 * Strokes the server refused do not hold the queue: their op goes and comes back rejected with
 * the reason, so the person can sign again.
 */
export async function queuedOps(db: YanshouDb, limit: number): Promise<Op[]> {
  return db.transaction('r', [db.outbox, db.strokes], async () => {
    const rows = await db.outbox
      .orderBy('seq')
      .filter((r) => r.ackedAt === null)
      .limit(limit)
      .toArray();
    const out: Op[] = [];
    for (const r of rows) {
      const sha = strokesNamedBy(r.op);
      if (sha !== null && (await db.strokes.get(sha))?.state === 'pending') break;
      out.push(r.op);
    }
    return out;
  });
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
    // A handful of bulk requests per response, whatever its size: IndexedDB round trips, not
    // the work on the data, are what a phone pays for.
    await db.transaction('rw', [db.meta, db.entities, db.outbox, db.rejections, db.views], async () => {
      const meta = await loadMeta(db, deviceId);
      const outbox = new Map((await db.outbox.toArray()).map((r) => [r.seq, r]));
      const stale = new Set<string>();
      const removed: number[] = [];
      const rejections: RejectionRow[] = [];
      for (const result of response.results) {
        const op = sentById.get(result.op);
        if (!op) continue; // not ours in this request: ignore (§10)
        const row = outbox.get(op.seq);
        if (!row || row.op.id !== op.id) continue; // no longer queued
        switch (result.status) {
          case 'applied':
          case 'conflict':
            row.ackedAt = result.commit_seq;
            if (result.status === 'applied') report.applied++;
            else report.conflicts++;
            break;
          case 'duplicate':
            outbox.delete(op.seq);
            removed.push(op.seq);
            break;
          case 'rejected':
            outbox.delete(op.seq);
            removed.push(op.seq);
            rejections.push({ id: op.id, entity: op.entity, op, code: result.code, message: result.message, at: now });
            report.rejected++;
            break;
          case 'gap':
            continue;
        }
        stale.add(op.entity);
      }

      const changed = response.changes.filter((c) => c.commit_seq > meta.cursor);
      const ids = [...new Set(changed.map((c) => c.entity))];
      const loaded = await db.entities.bulkGet(ids);
      const touched = new Map<string, EntityState | null>(ids.map((id, i) => [id, loaded[i]?.state ?? null]));
      let clock = meta.clock;
      let cursor = meta.cursor;
      for (const change of changed) {
        if (change.commit_seq <= cursor) continue;
        touched.set(change.entity, applyChangeToEntity(touched.get(change.entity) ?? null, change));
        const o = observe(clock, change.hlc, now);
        clock = o.clock;
        if (o.drift !== null) report.drift = true;
        cursor = change.commit_seq;
        report.changes++;
      }
      cursor = Math.max(cursor, response.cursor);
      const rows: EntityRow[] = [];
      for (const [id, state] of touched) {
        if (state) rows.push({ id, mineId: mineIdOf(state), state });
        stale.add(id);
      }
      await db.entities.bulkPut(rows);

      // Acknowledged ops at or below the cursor are now part of the confirmed state.
      for (const [seq, r] of outbox) {
        if (r.ackedAt !== null && r.ackedAt <= cursor) {
          outbox.delete(seq);
          removed.push(seq);
          stale.add(r.entity);
        }
      }
      await db.outbox.bulkDelete(removed);
      await db.outbox.bulkPut([...outbox.values()].filter((r) => r.ackedAt !== null && stale.has(r.entity)));
      if (rejections.length > 0) await db.rejections.bulkPut(rejections);

      // Views of the records whose confirmed state or outbox changed.
      const pendingBy = new Map<string, OutboxRow[]>();
      for (const r of [...outbox.values()].sort((a, b) => a.seq - b.seq)) {
        const list = pendingBy.get(r.entity) ?? [];
        list.push(r);
        pendingBy.set(r.entity, list);
      }
      const staleIds = [...stale];
      const missing = staleIds.filter((id) => !touched.has(id) && pendingBy.has(id));
      const more = await db.entities.bulkGet(missing);
      missing.forEach((id, i) => touched.set(id, more[i]?.state ?? null));
      const views: ViewRow[] = [];
      const noViews: string[] = [];
      for (const id of staleIds) {
        const pending = pendingBy.get(id);
        const view = pending ? viewOf(touched.get(id) ?? null, pending) : null;
        if (view) views.push({ id, state: view });
        else noViews.push(id);
      }
      await db.views.bulkDelete(noViews);
      await db.views.bulkPut(views);
      report.cursor = cursor;
      await saveMeta(db, { ...meta, cursor, clock });
    });
  } catch (e) {
    throw StorageError.from(e);
  }
  return report;
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
