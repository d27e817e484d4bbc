/**
 * The device side (PROTOCOL.md §10): a port of the Rust `client.rs` `Replica` as plain data plus
 * pure functions.
 *
 * Vocabulary:
 * - **Confirmed state**: what the device pulled from the server, applied in commit order. It only
 *   moves forward, so the base revisions the device puts on its ops never go backwards.
 * - **Outbox**: ops made here and not yet in the confirmed state. An op is *queued* until the
 *   server acknowledges it (applied, conflict, duplicate), then *acknowledged* (kept in the view
 *   so the UI does not flicker) until the pulled feed passes its commit sequence, then dropped.
 * - **Rejections**: ops the server refused, with the reason, for the person to see. Never
 *   silently dropped.
 * - **View** ({@link view}, {@link viewEntity}): the confirmed state with the outbox re-applied by
 *   the same {@link merge} as the server (allow-all policy, commit sequence 0).
 *
 * Every function is pure: it returns a new {@link ReplicaData} (sharing unchanged parts) and never
 * modifies its input; time (`now`, ms) and op ids come from the caller ({@link Stamp}).
 *
 * ## Persisting a replica
 *
 * {@link ReplicaData} is plain JSON/structured-clone data (no classes). Keep it in IndexedDB as:
 * - `meta`: `device`, `clock` (`{last: {wall_ms, counter}}`), `nextSeq`, `cursor` — one record;
 * - `state`: one row per entity of `confirmed` (key: entity id);
 * - `outbox`: one row per {@link Pending} (key: `op.seq`, which is also the send order);
 * - `rejections`: one row per {@link Rejection} (key: `op.id`).
 *
 * After making an op, write the new `clock` and `nextSeq` and add the op's outbox row **in the
 * same transaction** (a crash must not leave an op without its seq, or a seq used twice). After
 * {@link handleResponse}, in one transaction: write `clock` and `cursor`, the entities listed in
 * `report.changedEntities`, and replace the outbox and rejection rows (or diff them by op id).
 * To load, rebuild the object from those tables; nothing else is needed (views are derived).
 */

import { sectionHash } from './canonical';
import { applyChange, MissingEntityError } from './change';
import { newClock, observe, tick, type Clock, type ClockDrift } from './hlc';
import { merge, type MergeContext } from './merge';
import { getOwn } from './record';
import {
  MAX_OPS_PER_REQUEST,
  PROTOCOL_VERSION,
  type DeviceId,
  type EntityId,
  type EntityState,
  type FieldState,
  type Op,
  type OpBody,
  type OpId,
  type RejectCode,
  type SyncRequest,
  type SyncResponse,
} from './types';
import { valueEquals, type Value } from './value';

/** An op in the outbox. */
export interface Pending {
  op: Op;
  /** The commit sequence once the server acknowledged it; null while queued. */
  acknowledged: number | null;
}

/** An op the server refused, kept for the person to see (its value is not lost). */
export interface Rejection {
  op: Op;
  code: RejectCode;
  message: string;
}

/** A device's replica: everything to persist (see the module docs). */
export interface ReplicaData {
  device: DeviceId;
  clock: Clock;
  /** The seq the next op gets; starts at 1. */
  nextSeq: number;
  /** The last commit sequence applied; 0 initially. */
  cursor: number;
  /** Pulled state only, by entity id. */
  confirmed: Record<EntityId, EntityState>;
  /** Oldest first (ascending seq). */
  outbox: Pending[];
  /** Oldest first. */
  rejections: Rejection[];
}

/** What making an op needs from the outside world. */
export interface Stamp {
  /** Wall time in ms since the epoch. */
  now: number;
  /** Makes a fresh op id (a UUID, lowercase hyphenated); e.g. `() => crypto.randomUUID()`. */
  newId: () => OpId;
}

/** Why the replica refused to make an op or to take a response. */
export class ClientError extends Error {
  override readonly name = 'ClientError';
  constructor(
    /**
     * `rejected`: the rules would reject the op given what the device knows (`code` says why);
     * `hash`: the section cannot be hashed for signing (a field is in conflict);
     * `protocol`: the response speaks another protocol version;
     * `feed`: the pulled changes skip an entity's creation.
     */
    readonly kind: 'rejected' | 'hash' | 'protocol' | 'feed',
    message: string,
    readonly code: RejectCode | null = null,
  ) {
    super(message);
  }
}

/** A made op, the replica that holds it, and the entity's new view. */
export interface Made {
  replica: ReplicaData;
  op: Op;
  view: EntityState;
}

/** What {@link handleResponse} did. */
export interface SyncReport {
  /** Ops the server acknowledged in this response. */
  acknowledged: number;
  /** Of those, ops accepted as conflicting values. */
  conflicts: number;
  /** Ops the server rejected (now in `rejections`). */
  rejected: number;
  /** Ops held behind a gap (still queued). */
  held: number;
  /** Changes applied to the confirmed state. */
  changesApplied: number;
  /** The server has more changes: sync again. */
  hasMore: boolean;
  /** A pulled HLC was beyond the drift bound (this or another device's clock is wrong). */
  clockDrift: ClockDrift | null;
  /** Entities whose confirmed state changed (to write back). */
  changedEntities: EntityId[];
}

const PREVIEW: MergeContext = { commitSeq: 0 };

/** A fresh replica for a device that has made no ops yet. */
export function newReplica(device: DeviceId): ReplicaData {
  return { device, clock: newClock(), nextSeq: 1, cursor: 0, confirmed: {}, outbox: [], rejections: [] };
}

/** Whether nothing is waiting to be sent or confirmed. */
export function isQuiet(replica: ReplicaData): boolean {
  return replica.outbox.length === 0;
}

/** The rejections, and the replica without them (once the UI has shown them). */
export function takeRejections(replica: ReplicaData): { replica: ReplicaData; rejections: Rejection[] } {
  return { replica: { ...replica, rejections: [] }, rejections: replica.rejections };
}

/** The confirmed state with pending ops re-applied: what the UI shows. Ops the rules reject are skipped. */
export function view(replica: ReplicaData): Record<EntityId, EntityState> {
  const states: Record<EntityId, EntityState> = { ...replica.confirmed };
  for (const { op } of replica.outbox) {
    const result = merge(getOwn(states, op.entity) ?? null, op, PREVIEW);
    if (result.change !== null) states[op.entity] = result.state;
  }
  return states;
}

/** The view of one entity, or null if it does not exist (in the view). */
export function viewEntity(replica: ReplicaData, entity: EntityId): EntityState | null {
  let state = getOwn(replica.confirmed, entity) ?? null;
  for (const { op } of replica.outbox) {
    if (op.entity !== entity) continue;
    const result = merge(state, op, PREVIEW);
    if (result.change !== null) state = result.state;
  }
  return state;
}

function confirmedField(replica: ReplicaData, entity: EntityId, field: string): FieldState | undefined {
  const state = getOwn(replica.confirmed, entity);
  return state === undefined ? undefined : getOwn(state.fields, field);
}

/** Stamps an op, checks it against the view with the shared rules, and queues it. */
function make(replica: ReplicaData, stamp: Stamp, entity: EntityId, body: OpBody, current?: EntityState | null): Made {
  // A refused op must not advance the clock or consume a sequence number: tick a copy.
  const ticked = tick(replica.clock, stamp.now);
  const id = stamp.newId();
  const op: Op = { id, device: replica.device, seq: replica.nextSeq, hlc: ticked.last, entity, ...body };
  const result = merge(current === undefined ? viewEntity(replica, entity) : current, op, PREVIEW);
  switch (result.outcome) {
    case 'rejected':
      throw new ClientError('rejected', result.message, result.code);
    case 'duplicate':
      throw new ClientError('rejected', `op id ${id} was already used`, 'invalid_op');
    case 'applied':
    case 'conflict':
      return {
        replica: {
          ...replica,
          clock: ticked,
          nextSeq: replica.nextSeq + 1,
          outbox: [...replica.outbox, { op, acknowledged: null }],
        },
        op,
        view: result.state,
      };
  }
}

/** Creates an entity with initial scalar fields. */
export function create(
  replica: ReplicaData,
  stamp: Stamp,
  entity: EntityId,
  entityType: string,
  fields: Record<string, Value>,
): Made {
  return make(replica, stamp, entity, { kind: 'create', entity_type: entityType, fields });
}

/**
 * Sets a scalar field, based on the field's confirmed revision. Refused (`conflict_unresolved`)
 * while the confirmed field holds a conflict: the person must {@link resolve} it.
 */
export function set(replica: ReplicaData, stamp: Stamp, entity: EntityId, field: string, value: Value): Made {
  const confirmed = confirmedField(replica, entity, field);
  if (confirmed !== undefined && confirmed.conflict !== null) {
    throw new ClientError(
      'rejected',
      `field ${JSON.stringify(field)} has concurrent values; resolve the conflict first`,
      'conflict_unresolved',
    );
  }
  return make(replica, stamp, entity, { kind: 'set', field, value, base_rev: confirmed?.rev ?? 0 });
}

/** Adds an element to a set field. */
export function add(replica: ReplicaData, stamp: Stamp, entity: EntityId, field: string, element: Value): Made {
  return make(replica, stamp, entity, { kind: 'add', field, element });
}

/** Removes an element from a set field: exactly the adds of it this device can see. */
export function remove(replica: ReplicaData, stamp: Stamp, entity: EntityId, field: string, element: Value): Made {
  const current = viewEntity(replica, entity);
  const set = current === null ? undefined : getOwn(current.sets, field);
  const seen = set === undefined ? undefined : Object.values(set.elements).find((e) => valueEquals(e.value, element));
  const observed = seen === undefined ? [] : [...seen.tags];
  return make(replica, stamp, entity, { kind: 'remove', field, element, observed }, current);
}

/** Deletes an entity. */
export function tombstone(replica: ReplicaData, stamp: Stamp, entity: EntityId): Made {
  return make(replica, stamp, entity, { kind: 'tombstone' });
}

/**
 * Signs a section as the device shows it (including pending edits, which reach the server before
 * the signature because the series is ordered).
 */
export function sign(replica: ReplicaData, stamp: Stamp, entity: EntityId, section: string, signature: Value): Made {
  const current = viewEntity(replica, entity);
  if (current === null) throw new ClientError('rejected', `entity ${entity} does not exist`, 'unknown_entity');
  const contentHash = sectionHash(current, section);
  if (contentHash === null) {
    throw new ClientError('hash', `section ${JSON.stringify(section)} has an unresolved conflict; resolve it before signing`);
  }
  return make(replica, stamp, entity, { kind: 'sign', section, content_hash: contentHash, signature }, current);
}

/** Resolves a conflicted field, based on its confirmed revision. */
export function resolve(
  replica: ReplicaData,
  stamp: Stamp,
  entity: EntityId,
  field: string,
  value: Value,
  chosenOp: OpId | null,
  reason: string,
): Made {
  const baseRev = confirmedField(replica, entity, field)?.rev ?? 0;
  return make(replica, stamp, entity, {
    kind: 'resolve',
    field,
    value,
    base_rev: baseRev,
    chosen_op: chosenOp,
    reason,
  });
}

/** The next request: queued ops (oldest first, at most {@link MAX_OPS_PER_REQUEST}) and the cursor. */
export function buildRequest(replica: ReplicaData, pullLimit: number | null = null): SyncRequest {
  return {
    protocol_version: PROTOCOL_VERSION,
    device: replica.device,
    ops: replica.outbox
      .filter((p) => p.acknowledged === null)
      .slice(0, MAX_OPS_PER_REQUEST)
      .map((p) => p.op),
    cursor: replica.cursor,
    pull_limit: pullLimit,
  };
}

/**
 * Takes a response: settles the outbox and applies the pulled changes. Safe with duplicated,
 * late or reordered responses: results for ops no longer queued and changes at or below the
 * cursor are ignored. Throws {@link ClientError} (`protocol`, `feed`); the input replica is then
 * unchanged, so nothing is half-applied.
 */
export function handleResponse(
  replica: ReplicaData,
  response: SyncResponse,
  nowMs: number,
): { replica: ReplicaData; report: SyncReport } {
  if (response.protocol_version !== PROTOCOL_VERSION) {
    throw new ClientError(
      'protocol',
      `unsupported sync protocol version ${response.protocol_version}; this side speaks version ${PROTOCOL_VERSION}; update the app`,
    );
  }
  const report: SyncReport = {
    acknowledged: 0,
    conflicts: 0,
    rejected: 0,
    held: 0,
    changesApplied: 0,
    hasMore: response.has_more,
    clockDrift: null,
    changedEntities: [],
  };
  const outbox = [...replica.outbox];
  const rejections = [...replica.rejections];
  for (const result of response.results) {
    const index = outbox.findIndex((p) => p.op.id === result.op && p.acknowledged === null);
    const pending = outbox[index];
    if (pending === undefined) continue;
    switch (result.status) {
      case 'applied':
      case 'conflict':
        outbox[index] = { op: pending.op, acknowledged: result.commit_seq };
        report.acknowledged++;
        if (result.status === 'conflict') report.conflicts++;
        break;
      case 'duplicate':
        outbox.splice(index, 1);
        report.acknowledged++;
        break;
      case 'rejected':
        outbox.splice(index, 1);
        rejections.push({ op: pending.op, code: result.code, message: result.message });
        report.rejected++;
        break;
      case 'gap':
        report.held++;
        break;
    }
  }
  let { clock, cursor } = replica;
  const confirmed: Record<EntityId, EntityState> = { ...replica.confirmed };
  const changed = new Set<EntityId>();
  for (const change of response.changes) {
    if (change.commit_seq <= cursor) continue;
    try {
      applyChange(confirmed, change);
    } catch (e) {
      if (e instanceof MissingEntityError) throw new ClientError('feed', e.message);
      throw e;
    }
    changed.add(change.entity);
    cursor = change.commit_seq;
    report.changesApplied++;
    const observed = observe(clock, change.hlc, nowMs);
    clock = observed.clock;
    if (observed.drift !== null) report.clockDrift = observed.drift;
  }
  cursor = Math.max(cursor, response.cursor);
  report.changedEntities = [...changed];
  return {
    replica: {
      ...replica,
      clock,
      cursor,
      confirmed,
      outbox: outbox.filter((p) => p.acknowledged === null || p.acknowledged > cursor),
      rejections,
    },
    report,
  };
}
