/**
 * Applying pulled changes (PROTOCOL.md §8). A change carries a snapshot (the new field state,
 * set state, created entity, signature or tombstone), so applying changes in commit order to a
 * mirror reproduces the server's state exactly.
 */

import { getOwn, setOwn, withKey, withoutKey } from './record';
import type { Change, ChangeBody, ChangeHeader, EntityState, Op, Withdrawal } from './types';

/** A change refers to an entity the mirror has not seen created: changes were skipped or reordered. */
export class MissingEntityError extends Error {
  override readonly name = 'MissingEntityError';
  constructor(
    readonly commitSeq: number,
    readonly entity: string,
  ) {
    super(`change ${commitSeq} refers to entity ${entity}, which this replica has not seen created`);
  }
}

/** `state` with the signature of `w.section` withdrawn and `w` appended to its withdrawals. */
export function withdrawn(state: EntityState, w: Withdrawal): EntityState {
  return {
    ...state,
    signatures: withoutKey(state.signatures, w.section),
    withdrawals: [...(state.withdrawals ?? []), w],
  };
}

/**
 * The state of one entity after a change (`state`: its state before, or null). Pure: returns a
 * new object. Throws {@link MissingEntityError} for a non-`created` change on a missing entity.
 */
export function applyChangeToEntity(state: EntityState | null, change: Change): EntityState {
  if (change.kind === 'created') return change.state;
  if (state === null) throw new MissingEntityError(change.commit_seq, change.entity);
  switch (change.kind) {
    case 'field':
      return { ...state, fields: withKey(state.fields, change.field, change.state) };
    case 'set_field':
      return { ...state, sets: withKey(state.sets, change.field, change.state) };
    case 'tombstoned':
      return { ...state, tombstoned: true };
    case 'signed':
      return { ...state, signatures: withKey(state.signatures, change.section, change.signature) };
    case 'withdrawn':
      return withdrawn(state, change.withdrawal);
  }
}

/**
 * Applies one change to a mirror of entity states, **in place**: the slot of `change.entity` in
 * `states` is replaced by a new object (entity objects themselves are never modified, so earlier
 * references stay valid). Returns `states`.
 */
export function applyChange(states: Record<string, EntityState>, change: Change): Record<string, EntityState> {
  setOwn(states, change.entity, applyChangeToEntity(getOwn(states, change.entity) ?? null, change));
  return states;
}

/** The full change record of a merged op (header fields first, in wire order). */
export function makeChange(op: Op, entityType: string, commitSeq: number, body: ChangeBody): Change {
  const header: ChangeHeader = {
    commit_seq: commitSeq,
    entity: op.entity,
    entity_type: entityType,
    op: op.id,
    device: op.device,
    hlc: op.hlc,
  };
  return { ...header, ...body };
}
