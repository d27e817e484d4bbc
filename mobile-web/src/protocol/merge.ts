/**
 * The merge rules (PROTOCOL.md §6): one pure, synchronous function from (entity state, op,
 * context) to an outcome, a port of the Rust `merge.rs` with the checks in the same order:
 *
 * 1. the op is well formed (`invalid_op`);
 * 2. `create` needs a new entity, every other op an existing one;
 * 3. a replay whose effect is visible is a `duplicate`;
 * 4. nothing applies to a tombstoned entity;
 * 5. the policy must allow the op;
 * 6. nothing changes a signed section;
 * 7. the kind-specific rule (revision/streak rule for `set`, OR-set for `add`/`remove`,
 *    current-revision rule for `resolve`, hash match for `sign`).
 *
 * Outcomes: **applied** (the state changed), **conflict** (accepted as one of several concurrent
 * values), **duplicate** (already there), **rejected** (code + message for the person).
 *
 * States are treated as immutable: the input is never modified; a new state shares unchanged
 * parts with the old one. The same function previews pending ops on a device (allow-all policy,
 * commit sequence 0), so the device and the server cannot disagree about the rules.
 */

import { compareHlc } from './hlc';
import { canonical, conflictedField, sectionHash } from './canonical';
import { withdrawn } from './change';
import { cmpCodePoints, getOwn, hasOwn, setOwn, withKey } from './record';
import {
  opField,
  sectionOf,
  type Candidate,
  type ChangeBody,
  type EntityState,
  type FieldState,
  type Op,
  type OrSet,
  type Reject,
  type RejectCode,
  type ResolveBody,
  type SetBody,
  type SetElement,
  type Withdrawal,
} from './types';
import { ValueError, validateValue, valueEquals, type Value } from './value';

/**
 * The server's schema and authorisation hook: return a rejection (typically `unknown_field` or
 * `forbidden`) or null to allow. `entityType` is the entity's type (for `create`, the new one).
 */
export type Policy = (entityType: string, op: Op) => Reject | null;

/** A policy that allows everything (devices previewing their own ops, tests). */
export const allowAll: Policy = () => null;

/** What merge needs besides the state and the op. */
export interface MergeContext {
  /** Defaults to {@link allowAll}. */
  policy?: Policy;
  /** The commit sequence number this op's change gets if it applies; 0 on a device. */
  commitSeq: number;
}

/** The result of merging one op. `state` is the new state, or the unchanged input. */
export type MergeResult =
  | { outcome: 'applied' | 'conflict'; state: EntityState; change: ChangeBody }
  | { outcome: 'duplicate'; state: EntityState | null; change: null }
  | {
      outcome: 'rejected';
      code: RejectCode;
      message: string;
      state: EntityState | null;
      change: null;
    };

/** The outcome names. */
export type MergeOutcome = MergeResult['outcome'];

class Rejection extends Error {
  constructor(
    readonly code: RejectCode,
    message: string,
  ) {
    super(message);
  }
}

function reject(code: RejectCode, message: string): never {
  throw new Rejection(code, message);
}

/** Rust's `{:?}` of a string, close enough for messages. */
function q(s: string): string {
  return JSON.stringify(s);
}

type Effect = { state: EntityState; change: ChangeBody; conflicted: boolean };

/** Merges one op into the state of its entity (`null` if it does not exist). Pure and deterministic. */
export function merge(state: EntityState | null, op: Op, ctx: MergeContext): MergeResult {
  try {
    const effect = mergeChecked(state, op, ctx);
    if (effect === 'duplicate') return { outcome: 'duplicate', state, change: null };
    return {
      outcome: effect.conflicted ? 'conflict' : 'applied',
      state: effect.state,
      change: effect.change,
    };
  } catch (e) {
    if (e instanceof Rejection) {
      return { outcome: 'rejected', code: e.code, message: e.message, state, change: null };
    }
    throw e;
  }
}

function applied(state: EntityState, change: ChangeBody): Effect {
  return { state, change, conflicted: false };
}

function mergeChecked(slot: EntityState | null, op: Op, ctx: MergeContext): Effect | 'duplicate' {
  const policy = ctx.policy ?? allowAll;
  validate(op);
  if (op.kind === 'create') {
    if (slot === null) {
      checkPolicy(policy, op.entity_type, op);
      const created = create(op, op.entity_type, op.fields);
      return applied(created, { kind: 'created', state: created });
    }
    if (slot.created_by === op.id) return 'duplicate';
    return reject('entity_exists', `entity ${op.entity} already exists`);
  }
  if (slot === null) return reject('unknown_entity', `entity ${op.entity} does not exist`);
  const state = slot;
  if (isDuplicate(state, op)) return 'duplicate';
  if (state.tombstoned) return reject('entity_tombstoned', `entity ${op.entity} was deleted`);
  checkPolicy(policy, state.entity_type, op);
  const field = opField(op);
  if (field !== null) checkUnsigned(state, field);
  // Below, every arm finishes its checks before it builds the new state.
  switch (op.kind) {
    case 'set': {
      checkKind(state, op.field, false);
      const [fieldState, conflicted] = setRule(getOwn(state.fields, op.field), op);
      const next = { ...state, fields: withKey(state.fields, op.field, fieldState) };
      return { state: next, change: { kind: 'field', field: op.field, state: fieldState }, conflicted };
    }
    case 'resolve': {
      checkKind(state, op.field, false);
      const fieldState = resolveRule(getOwn(state.fields, op.field), op);
      const next = { ...state, fields: withKey(state.fields, op.field, fieldState) };
      return applied(next, { kind: 'field', field: op.field, state: fieldState });
    }
    case 'add': {
      checkKind(state, op.field, true);
      const key = elementKey(op.element);
      const set = getOwn(state.sets, op.field) ?? { elements: {} };
      const entry = getOwn(set.elements, key);
      const element: SetElement = {
        value: entry?.value ?? op.element,
        tags: insertSorted(entry?.tags ?? [], op.id),
      };
      const nextSet: OrSet = { elements: withKey(set.elements, key, element) };
      return applied({ ...state, sets: withKey(state.sets, op.field, nextSet) }, setChange(op.field, nextSet));
    }
    case 'remove': {
      checkKind(state, op.field, true);
      const key = elementKey(op.element);
      const set = getOwn(state.sets, op.field) ?? { elements: {} };
      const entry = getOwn(set.elements, key);
      let nextSet = set;
      if (entry !== undefined) {
        const tags = entry.tags.filter((t) => !op.observed.includes(t));
        const elements: Record<string, SetElement> = {};
        for (const [k, e] of Object.entries(set.elements)) {
          if (k !== key) setOwn(elements, k, e);
          else if (tags.length > 0) setOwn(elements, k, { value: e.value, tags });
        }
        nextSet = { elements };
      }
      return applied({ ...state, sets: withKey(state.sets, op.field, nextSet) }, setChange(op.field, nextSet));
    }
    case 'tombstone': {
      const signed = Object.keys(state.signatures).sort(cmpCodePoints)[0];
      if (signed !== undefined) {
        return reject('section_signed', `section ${q(signed)} is signed; a signed record cannot be deleted`);
      }
      return applied({ ...state, tombstoned: true }, { kind: 'tombstoned' });
    }
    case 'sign': {
      const { section, content_hash } = op;
      if (hasOwn(state.signatures, section)) {
        return reject('already_signed', `section ${q(section)} is already signed`);
      }
      let current: string | null;
      try {
        current = sectionHash(state, section);
      } catch (e) {
        if (e instanceof ValueError) return reject('invalid_op', e.message);
        throw e;
      }
      if (current === null) {
        const f = conflictedField(state, section) ?? '';
        return reject(
          'section_conflicted',
          `field ${q(f)} has an unresolved conflict; resolve it before signing`,
        );
      }
      if (current !== content_hash) {
        return reject(
          'hash_mismatch',
          `section ${q(section)} changed since it was shown for signing ` +
            `(signed ${content_hash}, current ${current}); review and sign again`,
        );
      }
      const signature = {
        content_hash: current,
        signed_at_commit: ctx.commitSeq,
        op: op.id,
        device: op.device,
        hlc: op.hlc,
        signature: op.signature,
      };
      return applied(
        { ...state, signatures: withKey(state.signatures, section, signature) },
        { kind: 'signed', section, signature },
      );
    }
    case 'withdraw': {
      const { section, reason } = op;
      const signature = getOwn(state.signatures, section);
      if (signature === undefined) {
        return reject('not_signed', `section ${q(section)} is not signed; there is nothing to withdraw`);
      }
      const withdrawal: Withdrawal = {
        section,
        signature,
        op: op.id,
        device: op.device,
        hlc: op.hlc,
        reason,
        withdrawn_at_commit: ctx.commitSeq,
      };
      return applied(withdrawn(state, withdrawal), { kind: 'withdrawn', section, withdrawal });
    }
  }
}

function checkPolicy(policy: Policy, entityType: string, op: Op): void {
  const refusal = policy(entityType, op);
  if (refusal !== null) reject(refusal.code, refusal.message);
}

/** Rust's `char::is_whitespace` (Unicode White_Space), which differs from JS `trim` (U+0085, U+FEFF). */
function isBlank(s: string): boolean {
  return /^[\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/.test(s);
}

function checkValue(v: Value): void {
  try {
    validateValue(v);
  } catch (e) {
    if (e instanceof ValueError) reject('invalid_op', e.message);
    throw e;
  }
}

function validate(op: Op): void {
  const field = opField(op);
  if (field !== null && field === '') reject('invalid_op', 'the field key is empty');
  switch (op.kind) {
    case 'create':
      if (op.entity_type === '') reject('invalid_op', 'the entity type is empty');
      for (const [key, value] of Object.entries(op.fields)) {
        if (key === '') reject('invalid_op', 'a field key is empty');
        checkValue(value);
      }
      return;
    case 'set':
      return checkValue(op.value);
    case 'add':
    case 'remove':
      return checkValue(op.element);
    case 'tombstone':
      return;
    case 'sign':
      if (!/^[0-9a-f]{64}$/.test(op.content_hash)) {
        reject('invalid_op', `content hash ${q(op.content_hash)} is not a lowercase hex SHA-256`);
      }
      return checkValue(op.signature);
    case 'resolve':
      checkValue(op.value);
      if (isBlank(op.reason)) reject('invalid_op', 'a resolution needs a reason');
      return;
    case 'withdraw':
      if (op.section === '') reject('invalid_op', 'the section is empty');
      if (isBlank(op.reason)) reject('invalid_op', 'withdrawing a signature needs a reason');
      return;
  }
}

/** A replay whose effect is still visible in the state (merging is idempotent on its own). */
function isDuplicate(state: EntityState, op: Op): boolean {
  switch (op.kind) {
    case 'set':
    case 'resolve': {
      const f = getOwn(state.fields, op.field);
      return (
        f !== undefined &&
        (f.op === op.id ||
          (f.conflict?.candidates.some((c) => c.op === op.id) ?? false) ||
          f.resolution?.op === op.id)
      );
    }
    case 'add': {
      const s = getOwn(state.sets, op.field);
      return s !== undefined && Object.values(s.elements).some((e) => e.tags.includes(op.id));
    }
    case 'sign':
      return (
        getOwn(state.signatures, op.section)?.op === op.id ||
        (state.withdrawals ?? []).some((w) => w.signature.op === op.id)
      );
    case 'withdraw':
      return (state.withdrawals ?? []).some((w) => w.op === op.id);
    case 'create':
    case 'remove':
    case 'tombstone':
      return false;
  }
}

function checkUnsigned(state: EntityState, field: string): void {
  const section = sectionOf(field);
  const sig = getOwn(state.signatures, section);
  if (sig !== undefined) {
    reject(
      'section_signed',
      `section ${q(section)} was signed (commit ${sig.signed_at_commit}) after this edit was made; ` +
        `field ${q(field)} can no longer change`,
    );
  }
}

function checkKind(state: EntityState, field: string, wantSet: boolean): void {
  const mismatch = wantSet ? hasOwn(state.fields, field) : hasOwn(state.sets, field);
  if (mismatch) {
    const [is, ops] = wantSet ? ['a scalar field', 'add/remove'] : ['a set field', 'set/resolve'];
    reject('field_kind_mismatch', `field ${q(field)} is ${is}; ${ops} does not apply to it`);
  }
}

function elementKey(element: Value): string {
  try {
    return canonical(element);
  } catch (e) {
    if (e instanceof ValueError) return reject('invalid_op', e.message);
    throw e;
  }
}

function insertSorted(tags: readonly string[], tag: string): string[] {
  if (tags.includes(tag)) return [...tags];
  return [...tags, tag].sort(cmpCodePoints);
}

function setChange(field: string, set: OrSet): ChangeBody {
  return { kind: 'set_field', field, state: set };
}

function create(op: Op, entityType: string, fields: Record<string, Value>): EntityState {
  const states: Record<string, FieldState> = {};
  for (const [key, value] of Object.entries(fields)) {
    setOwn(states, key, {
      value,
      rev: 1,
      last_writer: op.device,
      op: op.id,
      hlc: op.hlc,
      streak_base: 0,
      conflict: null,
      resolution: null,
    });
  }
  return {
    id: op.entity,
    entity_type: entityType,
    created_by: op.id,
    tombstoned: false,
    fields: states,
    sets: {},
    signatures: {},
  };
}

function candidateOf(op: Op, value: Value): Candidate {
  return { value, op: op.id, device: op.device, hlc: op.hlc };
}

function cmpId(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Canonical candidate order: ascending (hlc, device, op); the last is the provisional winner. */
export function compareCandidates(a: Candidate, b: Candidate): number {
  return compareHlc(a.hlc, b.hlc) || cmpId(a.device, b.device) || cmpId(a.op, b.op);
}

function invalidBase(baseRev: number, rev: number): never {
  return reject('invalid_base_rev', `base revision ${baseRev} is newer than the field's revision ${rev}`);
}

/** The revision/streak rule: the new field state and whether it is (now) conflicted. */
function setRule(prev: FieldState | undefined, op: Op & SetBody): [FieldState, boolean] {
  const { value, base_rev: baseRev } = op;
  if (prev === undefined) {
    if (baseRev !== 0) invalidBase(baseRev, 0);
    const fresh: FieldState = {
      value,
      rev: 1,
      last_writer: op.device,
      op: op.id,
      hlc: op.hlc,
      streak_base: 0,
      conflict: null,
      resolution: null,
    };
    return [fresh, false];
  }
  if (baseRev > prev.rev) invalidBase(baseRev, prev.rev);
  let candidates: Candidate[];
  if (prev.conflict !== null) {
    if (baseRev === prev.rev) {
      reject(
        'conflict_unresolved',
        'the field has concurrent values; resolve the conflict instead of setting it',
      );
    }
    // Extend the conflict; this device's own earlier candidate is superseded (its ops are sequential).
    candidates = prev.conflict.candidates.filter((c) => c.device !== op.device);
    candidates.push(candidateOf(op, value));
  } else if (baseRev === prev.rev || (prev.last_writer === op.device && baseRev >= prev.streak_base)) {
    const next: FieldState = {
      value,
      rev: prev.rev + 1,
      last_writer: op.device,
      op: op.id,
      hlc: op.hlc,
      streak_base: prev.last_writer === op.device ? prev.streak_base : baseRev,
      conflict: null,
      resolution: null,
    };
    return [next, false];
  } else {
    // Concurrent with the current value: keep both.
    candidates = [
      { value: prev.value, op: prev.op, device: prev.last_writer, hlc: prev.hlc },
      candidateOf(op, value),
    ];
  }
  candidates.sort(compareCandidates);
  const winner = candidates[candidates.length - 1];
  const next: FieldState = {
    value: winner === undefined ? value : winner.value,
    rev: prev.rev + 1,
    last_writer: op.device,
    op: op.id,
    hlc: op.hlc,
    streak_base: prev.streak_base,
    conflict: { candidates },
    resolution: null,
  };
  return [next, true];
}

function resolveRule(prev: FieldState | undefined, op: Op & ResolveBody): FieldState {
  const { field, value, base_rev: baseRev, chosen_op: chosen, reason } = op;
  const noConflict = (): never => reject('no_conflict', `field ${q(field)} has no conflict to resolve`);
  if (prev === undefined) return noConflict();
  // Stale first: if the field moved on, the person must look at the new state before deciding.
  if (baseRev !== prev.rev) {
    reject(
      'stale_resolve',
      `field ${q(field)} changed since the conflict was shown (revision ${baseRev}, now ` +
        `${prev.rev}); review the new value(s) and resolve again`,
    );
  }
  const conflict = prev.conflict;
  if (conflict === null) return noConflict();
  if (chosen !== null && !conflict.candidates.some((c) => c.op === chosen && valueEquals(c.value, value))) {
    reject('unknown_candidate', `op ${chosen} is not a candidate of field ${q(field)} with this value`);
  }
  return {
    value,
    rev: prev.rev + 1,
    last_writer: op.device,
    op: op.id,
    hlc: op.hlc,
    streak_base: baseRev,
    conflict: null,
    resolution: { op: op.id, device: op.device, chosen_op: chosen, reason, candidates: conflict.candidates },
  };
}
