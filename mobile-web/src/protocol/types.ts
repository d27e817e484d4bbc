/**
 * The protocol's data: ops, entity state, changes and wire messages (PROTOCOL.md §4, §5, §8,
 * §9). Every name is the wire name (snake_case), and every type is plain JSON data, so it can be
 * sent, stored in IndexedDB and structured-cloned as is.
 *
 * Ids are lowercase hyphenated UUID strings; they compare as strings. Integers (seq, revisions,
 * commit sequence numbers, HLC wall time) are safe integers (< 2^53).
 */

import type { Hlc } from './hlc';
import type { Value } from './value';

/** A device (the only writer of its op series). */
export type DeviceId = string;
/** An entity (e.g. the acceptance table of one mine visit). */
export type EntityId = string;
/** One op; unique across all devices. */
export type OpId = string;

/** What every op carries besides its body. Field order is the wire order. */
export interface OpHeader {
  id: OpId;
  device: DeviceId;
  /** Position in the device's series: 1, 2, 3 … without gaps. */
  seq: number;
  hlc: Hlc;
  entity: EntityId;
}

/** Creates the entity with initial scalar fields (each at revision 1). */
export interface CreateBody {
  kind: 'create';
  entity_type: string;
  fields: Record<string, Value>;
}
/** Sets a scalar field, based on the field revision the device had confirmed. */
export interface SetBody {
  kind: 'set';
  field: string;
  value: Value;
  base_rev: number;
}
/** Adds an element to a set field (add wins). */
export interface AddBody {
  kind: 'add';
  field: string;
  element: Value;
}
/** Removes the observed adds of an element from a set field. */
export interface RemoveBody {
  kind: 'remove';
  field: string;
  element: Value;
  /** The ids of the `add`s of this element the device had seen. */
  observed: OpId[];
}
/** Deletes the entity (kept as a tombstone). */
export interface TombstoneBody {
  kind: 'tombstone';
}
/** Signs a section, freezing it. */
export interface SignBody {
  kind: 'sign';
  section: string;
  /** Lowercase hex SHA-256 of the section document as the signer saw it. */
  content_hash: string;
  /** Opaque payload (signer, stroke blob ref, device signature …). */
  signature: Value;
}
/** Withdraws the signer's own signature of a section (audited, with the reason). */
export interface WithdrawBody {
  kind: 'withdraw';
  section: string;
  /** Why; must not be blank. */
  reason: string;
}
/** Resolves a conflicted scalar field; itself audited. */
export interface ResolveBody {
  kind: 'resolve';
  field: string;
  value: Value;
  base_rev: number;
  chosen_op: OpId | null;
  /** Why; must not be blank. */
  reason: string;
}

/** What an op does, tagged by `kind`. */
export type OpBody =
  | CreateBody
  | SetBody
  | AddBody
  | RemoveBody
  | TombstoneBody
  | SignBody
  | ResolveBody
  | WithdrawBody;
/** One field-level change by one device: a flat object on the wire. */
export type Op = OpHeader & OpBody;
/** The op kinds. */
export type OpKind = OpBody['kind'];

/** One concurrent value of a field. */
export interface Candidate {
  value: Value;
  op: OpId;
  device: DeviceId;
  hlc: Hlc;
}

/** Every concurrent value, ascending by (hlc, device, op): the last is the provisional winner. */
export interface Conflict {
  candidates: Candidate[];
}

/** Who resolved a conflict, choosing what, why, from which candidates. */
export interface Resolution {
  op: OpId;
  device: DeviceId;
  chosen_op: OpId | null;
  reason: string;
  candidates: Candidate[];
}

/** The state of one scalar field. */
export interface FieldState {
  /** The value; while conflicted, the provisional winner's. */
  value: Value;
  /** 1 after the first write, +1 on every change. */
  rev: number;
  /** Device of the op that last changed the field. */
  last_writer: DeviceId;
  /** The op that last changed the field (a set, resolve or the create). */
  op: OpId;
  hlc: Hlc;
  /** The revision the current streak of `last_writer` started from. */
  streak_base: number;
  conflict: Conflict | null;
  resolution: Resolution | null;
}

/** One element of an OR-set. */
export interface SetElement {
  value: Value;
  /** Ids of the adds that put it there and were not removed; sorted, unique. */
  tags: OpId[];
}

/** An add-wins observed-remove set, keyed by the canonical JSON of each element. */
export interface OrSet {
  elements: Record<string, SetElement>;
}

/** A signature on a section. */
export interface SectionSignature {
  content_hash: string;
  signed_at_commit: number;
  op: OpId;
  device: DeviceId;
  hlc: Hlc;
  signature: Value;
}

/** A signature its signer withdrew. */
export interface Withdrawal {
  section: string;
  signature: SectionSignature;
  op: OpId;
  device: DeviceId;
  hlc: Hlc;
  reason: string;
  withdrawn_at_commit: number;
}

/** The state of one entity. */
export interface EntityState {
  id: EntityId;
  entity_type: string;
  /** The create op, so a replayed create is recognised. */
  created_by: OpId;
  tombstoned: boolean;
  fields: Record<string, FieldState>;
  sets: Record<string, OrSet>;
  signatures: Record<string, SectionSignature>;
  /** Withdrawn signatures, oldest first; absent while empty (as on the wire). */
  withdrawals?: Withdrawal[];
}

/** The snapshot part of a change, tagged by `kind`. */
export type ChangeBody =
  | { kind: 'created'; state: EntityState }
  | { kind: 'field'; field: string; state: FieldState }
  | { kind: 'set_field'; field: string; state: OrSet }
  | { kind: 'tombstoned' }
  | { kind: 'signed'; section: string; signature: SectionSignature }
  | { kind: 'withdrawn'; section: string; withdrawal: Withdrawal };

/** What every change carries besides its snapshot. Field order is the wire order. */
export interface ChangeHeader {
  commit_seq: number;
  entity: EntityId;
  entity_type: string;
  op: OpId;
  device: DeviceId;
  hlc: Hlc;
}

/** One committed effect in the server's feed. */
export type Change = ChangeHeader & ChangeBody;

/** Machine-readable rejection reasons (PROTOCOL.md §6). */
export type RejectCode =
  | 'invalid_op'
  | 'unknown_entity'
  | 'entity_exists'
  | 'entity_tombstoned'
  | 'section_signed'
  | 'already_signed'
  | 'hash_mismatch'
  | 'section_conflicted'
  | 'conflict_unresolved'
  | 'stale_resolve'
  | 'no_conflict'
  | 'unknown_candidate'
  | 'invalid_base_rev'
  | 'field_kind_mismatch'
  | 'wrong_device'
  | 'seq_reused'
  | 'unknown_field'
  | 'forbidden'
  | 'invalid_signature'
  | 'incomplete_section'
  | 'not_signed'
  | 'strokes_missing'
  | 'letter_issued';

/** Every {@link RejectCode}, in the Rust declaration order. */
export const REJECT_CODES: readonly RejectCode[] = [
  'invalid_op',
  'unknown_entity',
  'entity_exists',
  'entity_tombstoned',
  'section_signed',
  'already_signed',
  'hash_mismatch',
  'section_conflicted',
  'conflict_unresolved',
  'stale_resolve',
  'no_conflict',
  'unknown_candidate',
  'invalid_base_rev',
  'field_kind_mismatch',
  'wrong_device',
  'seq_reused',
  'unknown_field',
  'forbidden',
  'invalid_signature',
  'incomplete_section',
  'not_signed',
  'strokes_missing',
  'letter_issued',
];

/** A rejection: code plus a message for the person who made the op. */
export interface Reject {
  code: RejectCode;
  message: string;
}

/** What happened to one pushed op, tagged by `status`. */
export type OpResult =
  | { status: 'applied'; op: OpId; commit_seq: number }
  | { status: 'duplicate'; op: OpId }
  | { status: 'conflict'; op: OpId; commit_seq: number }
  | { status: 'rejected'; op: OpId; code: RejectCode; message: string }
  | { status: 'gap'; op: OpId; expected: number };

/** Push pending ops and pull changes. */
export interface SyncRequest {
  protocol_version: number;
  device: DeviceId;
  /** Ascending seq, at most {@link MAX_OPS_PER_REQUEST}. */
  ops: Op[];
  cursor: number;
  pull_limit: number | null;
}

/** Results of the pushed ops (request order) and a page of changes. */
export interface SyncResponse {
  protocol_version: number;
  results: OpResult[];
  changes: Change[];
  cursor: number;
  has_more: boolean;
}

/** The protocol version this code speaks. */
export const PROTOCOL_VERSION = 1;
/** Page size when the request does not ask for one. */
export const DEFAULT_PULL_LIMIT = 500;
/** The largest page a server hands out. */
export const MAX_PULL_LIMIT = 5000;
/** The most ops a device sends in one request. */
export const MAX_OPS_PER_REQUEST = 500;

/** The section of a field key: the part before the first `/`, or `""` (header). */
export function sectionOf(field: string): string {
  const slash = field.indexOf('/');
  return slash < 0 ? '' : field.slice(0, slash);
}

/** The field an op touches (`set`, `add`, `remove`, `resolve`), else null. */
export function opField(op: OpBody): string | null {
  switch (op.kind) {
    case 'set':
    case 'add':
    case 'remove':
    case 'resolve':
      return op.field;
    case 'create':
    case 'tombstone':
    case 'sign':
    case 'withdraw':
      return null;
  }
}

/** The section an op touches: the field's section, or the signed section; else null. */
export function opSection(op: OpBody): string | null {
  if (op.kind === 'sign' || op.kind === 'withdraw') return op.section;
  const field = opField(op);
  return field === null ? null : sectionOf(field);
}
