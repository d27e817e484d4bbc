/**
 * Wire messages (PROTOCOL.md §9): decoding with the version checked first, and the shape checked
 * as strictly as the Rust (serde) side does.
 *
 * Decoders rebuild every object with its keys in the Rust declaration order, and every map with
 * its keys sorted by code point (Rust `BTreeMap` order), so `JSON.stringify(decoded, null, 2)`
 * reproduces what the Rust side prints. (One JavaScript caveat: an object key that looks like an
 * array index, e.g. `"7"`, is always enumerated first, in numeric order.) Numbers are read from the
 * raw text, so `1.0` is refused where Rust refuses it. Unknown keys are ignored, as serde does.
 */

import type { Hlc } from './hlc';
import { JsonNumberError, JsonSyntaxError, parseJsonTree, type JsonTree } from './json';
import { cmpCodePoints, getOwn, setOwn } from './record';
import {
  PROTOCOL_VERSION,
  REJECT_CODES,
  type Candidate,
  type Change,
  type ChangeBody,
  type ChangeHeader,
  type Conflict,
  type EntityState,
  type FieldState,
  type Op,
  type OpBody,
  type OpHeader,
  type OpResult,
  type OrSet,
  type RejectCode,
  type Resolution,
  type SectionSignature,
  type Withdrawal,
  type SetElement,
  type SyncRequest,
  type SyncResponse,
} from './types';
import { ValueError, valueFromTree, type Value } from './value';

/** A message could not be accepted. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  private constructor(
    /** `unsupported_version`: the peer speaks another version (update the app); `malformed`: not the expected shape. */
    readonly kind: 'unsupported_version' | 'malformed',
    message: string,
    /** The version received, for `unsupported_version`. */
    readonly got: number | null,
  ) {
    super(message);
  }

  static unsupportedVersion(got: number): ProtocolError {
    return new ProtocolError(
      'unsupported_version',
      `unsupported sync protocol version ${got}; this side speaks version ${PROTOCOL_VERSION}; update the app`,
      got,
    );
  }

  static malformed(detail: string): ProtocolError {
    return new ProtocolError('malformed', `malformed sync message: ${detail}`, null);
  }
}

type Obj = { [key: string]: JsonTree };

function fail(path: string, what: string): never {
  throw ProtocolError.malformed(`${path}: ${what}`);
}

function describe(x: JsonTree | undefined): string {
  if (x === undefined) return 'missing';
  if (x instanceof JsonNumberError) return `number ${x.raw}`;
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'a list';
  return typeof x === 'object' ? 'a map' : `${typeof x} ${JSON.stringify(x)}`;
}

function obj(x: JsonTree | undefined, path: string): Obj {
  if (x === null || x === undefined || typeof x !== 'object' || Array.isArray(x) || x instanceof JsonNumberError) {
    return fail(path, `expected a map, got ${describe(x)}`);
  }
  return x;
}

function list(x: JsonTree | undefined, path: string): JsonTree[] {
  if (!Array.isArray(x)) return fail(path, `expected a list, got ${describe(x)}`);
  return x;
}

function str(x: JsonTree | undefined, path: string): string {
  if (typeof x !== 'string') return fail(path, `expected a string, got ${describe(x)}`);
  return x;
}

function bool(x: JsonTree | undefined, path: string): boolean {
  if (typeof x !== 'boolean') return fail(path, `expected a boolean, got ${describe(x)}`);
  return x;
}

/** An unsigned integer up to `max` (u64 fields are limited to 2^53 − 1 by the protocol). */
function uint(x: JsonTree | undefined, path: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof x !== 'number' || x < 0 || x > max) {
    return fail(path, `expected an unsigned integer up to ${max}, got ${describe(x)}`);
  }
  return x;
}

const U32_MAX = 0xffff_ffff;

function opt<T>(x: JsonTree | undefined, read: (x: JsonTree) => T): T | null {
  return x === undefined || x === null ? null : read(x);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Reads a UUID in any form the Rust `uuid` crate accepts, normalised to lowercase hyphenated. */
function uuid(x: JsonTree | undefined, path: string): string {
  const s = str(x, path);
  let hex = s;
  if (hex.length === 45 && hex.slice(0, 9).toLowerCase() === 'urn:uuid:') hex = hex.slice(9);
  else if (hex.length === 38 && hex.startsWith('{') && hex.endsWith('}')) hex = hex.slice(1, -1);
  hex = hex.toLowerCase();
  if (/^[0-9a-f]{32}$/.test(hex)) {
    hex = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
  if (!UUID.test(hex)) return fail(path, `expected a UUID, got ${JSON.stringify(s)}`);
  return hex;
}

function value(x: JsonTree | undefined, path: string): Value {
  if (x === undefined) return fail(path, 'missing');
  try {
    return sortValue(valueFromTree(x));
  } catch (e) {
    if (e instanceof ValueError) return fail(path, e.message);
    throw e;
  }
}

/** Maps sorted by code point, recursively (Rust `BTreeMap` order). */
function sortValue(v: Value): Value {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(sortValue);
  const out: { [key: string]: Value } = {};
  for (const k of Object.keys(v).sort(cmpCodePoints)) {
    const item = getOwn(v, k);
    if (item !== undefined) setOwn(out, k, sortValue(item));
  }
  return out;
}

function map<T>(x: JsonTree | undefined, path: string, read: (x: JsonTree | undefined, path: string) => T): Record<string, T> {
  const o = obj(x, path);
  const out: Record<string, T> = {};
  for (const k of Object.keys(o).sort(cmpCodePoints)) setOwn(out, k, read(getOwn(o, k), `${path}.${k}`));
  return out;
}

function field(o: Obj, key: string): JsonTree | undefined {
  return getOwn(o, key);
}

/** Decodes an HLC. */
export function decodeHlc(x: JsonTree | undefined, path = 'hlc'): Hlc {
  const o = obj(x, path);
  return { wall_ms: uint(field(o, 'wall_ms'), `${path}.wall_ms`), counter: uint(field(o, 'counter'), `${path}.counter`, U32_MAX) };
}

function rejectCode(x: JsonTree | undefined, path: string): RejectCode {
  const s = str(x, path);
  const code = REJECT_CODES.find((c) => c === s);
  if (code === undefined) return fail(path, `unknown variant ${JSON.stringify(s)}`);
  return code;
}

/** Decodes one op (flat object tagged by `kind`). */
export function decodeOp(x: JsonTree | undefined, path = 'op'): Op {
  const o = obj(x, path);
  const p = (k: string): string => `${path}.${k}`;
  const header: OpHeader = {
    id: uuid(field(o, 'id'), p('id')),
    device: uuid(field(o, 'device'), p('device')),
    seq: uint(field(o, 'seq'), p('seq')),
    hlc: decodeHlc(field(o, 'hlc'), p('hlc')),
    entity: uuid(field(o, 'entity'), p('entity')),
  };
  const kind = str(field(o, 'kind'), p('kind'));
  let body: OpBody;
  switch (kind) {
    case 'create':
      body = {
        kind,
        entity_type: str(field(o, 'entity_type'), p('entity_type')),
        fields: map(field(o, 'fields'), p('fields'), value),
      };
      break;
    case 'set':
      body = {
        kind,
        field: str(field(o, 'field'), p('field')),
        value: value(field(o, 'value'), p('value')),
        base_rev: uint(field(o, 'base_rev'), p('base_rev')),
      };
      break;
    case 'add':
      body = { kind, field: str(field(o, 'field'), p('field')), element: value(field(o, 'element'), p('element')) };
      break;
    case 'remove':
      body = {
        kind,
        field: str(field(o, 'field'), p('field')),
        element: value(field(o, 'element'), p('element')),
        observed: list(field(o, 'observed'), p('observed')).map((t, i) => uuid(t, `${p('observed')}[${i}]`)),
      };
      break;
    case 'tombstone':
      body = { kind };
      break;
    case 'sign':
      body = {
        kind,
        section: str(field(o, 'section'), p('section')),
        content_hash: str(field(o, 'content_hash'), p('content_hash')),
        signature: value(field(o, 'signature'), p('signature')),
      };
      break;
    case 'withdraw':
      body = { kind, section: str(field(o, 'section'), p('section')), reason: str(field(o, 'reason'), p('reason')) };
      break;
    case 'resolve':
      body = {
        kind,
        field: str(field(o, 'field'), p('field')),
        value: value(field(o, 'value'), p('value')),
        base_rev: uint(field(o, 'base_rev'), p('base_rev')),
        chosen_op: opt(field(o, 'chosen_op'), (t) => uuid(t, p('chosen_op'))),
        reason: str(field(o, 'reason'), p('reason')),
      };
      break;
    default:
      return fail(p('kind'), `unknown variant ${JSON.stringify(kind)}`);
  }
  return { ...header, ...body };
}

function decodeCandidate(x: JsonTree | undefined, path: string): Candidate {
  const o = obj(x, path);
  return {
    value: value(field(o, 'value'), `${path}.value`),
    op: uuid(field(o, 'op'), `${path}.op`),
    device: uuid(field(o, 'device'), `${path}.device`),
    hlc: decodeHlc(field(o, 'hlc'), `${path}.hlc`),
  };
}

function candidates(x: JsonTree | undefined, path: string): Candidate[] {
  return list(x, path).map((c, i) => decodeCandidate(c, `${path}[${i}]`));
}

/** Decodes a scalar field's state. */
export function decodeFieldState(x: JsonTree | undefined, path = 'field'): FieldState {
  const o = obj(x, path);
  const p = (k: string): string => `${path}.${k}`;
  return {
    value: value(field(o, 'value'), p('value')),
    rev: uint(field(o, 'rev'), p('rev')),
    last_writer: uuid(field(o, 'last_writer'), p('last_writer')),
    op: uuid(field(o, 'op'), p('op')),
    hlc: decodeHlc(field(o, 'hlc'), p('hlc')),
    streak_base: uint(field(o, 'streak_base'), p('streak_base')),
    conflict: opt(field(o, 'conflict'), (c): Conflict => ({
      candidates: candidates(field(obj(c, p('conflict')), 'candidates'), `${p('conflict')}.candidates`),
    })),
    resolution: opt(field(o, 'resolution'), (r): Resolution => {
      const ro = obj(r, p('resolution'));
      const rp = (k: string): string => `${p('resolution')}.${k}`;
      return {
        op: uuid(field(ro, 'op'), rp('op')),
        device: uuid(field(ro, 'device'), rp('device')),
        chosen_op: opt(field(ro, 'chosen_op'), (t) => uuid(t, rp('chosen_op'))),
        reason: str(field(ro, 'reason'), rp('reason')),
        candidates: candidates(field(ro, 'candidates'), rp('candidates')),
      };
    }),
  };
}

/** Decodes an OR-set (tags sorted and deduplicated, as a Rust `BTreeSet`). */
export function decodeOrSet(x: JsonTree | undefined, path = 'set'): OrSet {
  const o = obj(x, path);
  return {
    elements: map(field(o, 'elements'), `${path}.elements`, (e, ep): SetElement => {
      const eo = obj(e, ep);
      const tags = list(field(eo, 'tags'), `${ep}.tags`).map((t, i) => uuid(t, `${ep}.tags[${i}]`));
      return { value: value(field(eo, 'value'), `${ep}.value`), tags: [...new Set(tags)].sort(cmpCodePoints) };
    }),
  };
}

/** Decodes a section signature. */
export function decodeSectionSignature(x: JsonTree | undefined, path = 'signature'): SectionSignature {
  const o = obj(x, path);
  const p = (k: string): string => `${path}.${k}`;
  return {
    content_hash: str(field(o, 'content_hash'), p('content_hash')),
    signed_at_commit: uint(field(o, 'signed_at_commit'), p('signed_at_commit')),
    op: uuid(field(o, 'op'), p('op')),
    device: uuid(field(o, 'device'), p('device')),
    hlc: decodeHlc(field(o, 'hlc'), p('hlc')),
    signature: value(field(o, 'signature'), p('signature')),
  };
}

/** Decodes a withdrawn signature. */
export function decodeWithdrawal(x: JsonTree | undefined, path = 'withdrawal'): Withdrawal {
  const o = obj(x, path);
  const p = (k: string): string => `${path}.${k}`;
  return {
    section: str(field(o, 'section'), p('section')),
    signature: decodeSectionSignature(field(o, 'signature'), p('signature')),
    op: uuid(field(o, 'op'), p('op')),
    device: uuid(field(o, 'device'), p('device')),
    hlc: decodeHlc(field(o, 'hlc'), p('hlc')),
    reason: str(field(o, 'reason'), p('reason')),
    withdrawn_at_commit: uint(field(o, 'withdrawn_at_commit'), p('withdrawn_at_commit')),
  };
}

/** Decodes an entity state. */
export function decodeEntityState(x: JsonTree | undefined, path = 'state'): EntityState {
  const o = obj(x, path);
  const p = (k: string): string => `${path}.${k}`;
  const state: EntityState = {
    id: uuid(field(o, 'id'), p('id')),
    entity_type: str(field(o, 'entity_type'), p('entity_type')),
    created_by: uuid(field(o, 'created_by'), p('created_by')),
    tombstoned: bool(field(o, 'tombstoned'), p('tombstoned')),
    fields: map(field(o, 'fields'), p('fields'), decodeFieldState),
    sets: map(field(o, 'sets'), p('sets'), decodeOrSet),
    signatures: map(field(o, 'signatures'), p('signatures'), decodeSectionSignature),
  };
  const withdrawals = field(o, 'withdrawals');
  if (withdrawals !== undefined) {
    const list_ = list(withdrawals, p('withdrawals')).map((w, i) => decodeWithdrawal(w, `${p('withdrawals')}[${i}]`));
    if (list_.length > 0) state.withdrawals = list_;
  }
  return state;
}

/** Decodes a change snapshot without its header (`{"kind": …}`), e.g. a merge fixture's `change`. */
export function decodeChangeBody(x: JsonTree | undefined, path = 'change'): ChangeBody {
  const o = obj(x, path);
  const p = (k: string): string => `${path}.${k}`;
  const kind = str(field(o, 'kind'), p('kind'));
  switch (kind) {
    case 'created':
      return { kind, state: decodeEntityState(field(o, 'state'), p('state')) };
    case 'field':
      return { kind, field: str(field(o, 'field'), p('field')), state: decodeFieldState(field(o, 'state'), p('state')) };
    case 'set_field':
      return { kind, field: str(field(o, 'field'), p('field')), state: decodeOrSet(field(o, 'state'), p('state')) };
    case 'tombstoned':
      return { kind };
    case 'signed':
      return {
        kind,
        section: str(field(o, 'section'), p('section')),
        signature: decodeSectionSignature(field(o, 'signature'), p('signature')),
      };
    case 'withdrawn':
      return {
        kind,
        section: str(field(o, 'section'), p('section')),
        withdrawal: decodeWithdrawal(field(o, 'withdrawal'), p('withdrawal')),
      };
    default:
      return fail(p('kind'), `unknown variant ${JSON.stringify(kind)}`);
  }
}

/** Decodes one change of the feed. */
export function decodeChange(x: JsonTree | undefined, path = 'change'): Change {
  const o = obj(x, path);
  const p = (k: string): string => `${path}.${k}`;
  const header: ChangeHeader = {
    commit_seq: uint(field(o, 'commit_seq'), p('commit_seq')),
    entity: uuid(field(o, 'entity'), p('entity')),
    entity_type: str(field(o, 'entity_type'), p('entity_type')),
    op: uuid(field(o, 'op'), p('op')),
    device: uuid(field(o, 'device'), p('device')),
    hlc: decodeHlc(field(o, 'hlc'), p('hlc')),
  };
  return { ...header, ...decodeChangeBody(o, path) };
}

/** Decodes one op result (tagged by `status`). */
export function decodeOpResult(x: JsonTree | undefined, path = 'result'): OpResult {
  const o = obj(x, path);
  const p = (k: string): string => `${path}.${k}`;
  const status = str(field(o, 'status'), p('status'));
  const op = uuid(field(o, 'op'), p('op'));
  switch (status) {
    case 'applied':
    case 'conflict':
      return { status, op, commit_seq: uint(field(o, 'commit_seq'), p('commit_seq')) };
    case 'duplicate':
      return { status, op };
    case 'rejected':
      return {
        status,
        op,
        code: rejectCode(field(o, 'code'), p('code')),
        message: str(field(o, 'message'), p('message')),
      };
    case 'gap':
      return { status, op, expected: uint(field(o, 'expected'), p('expected')) };
    default:
      return fail(p('status'), `unknown variant ${JSON.stringify(status)}`);
  }
}

/** Parses the text and checks `protocol_version` before anything else (§9). */
function readVersioned(text: string): Obj {
  let tree: JsonTree;
  try {
    tree = parseJsonTree(text);
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw ProtocolError.malformed(e.message);
    throw e;
  }
  const o = obj(tree, 'message');
  const version = uint(field(o, 'protocol_version'), 'protocol_version', U32_MAX);
  if (version !== PROTOCOL_VERSION) throw ProtocolError.unsupportedVersion(version);
  return o;
}

/** Checks a received protocol version. */
export function checkVersion(got: number): void {
  if (got !== PROTOCOL_VERSION) throw ProtocolError.unsupportedVersion(got);
}

/** Parses a sync response: version first, then the shape. Throws {@link ProtocolError}. */
export function decodeResponse(text: string): SyncResponse {
  const o = readVersioned(text);
  return {
    protocol_version: PROTOCOL_VERSION,
    results: list(field(o, 'results'), 'results').map((r, i) => decodeOpResult(r, `results[${i}]`)),
    changes: list(field(o, 'changes'), 'changes').map((c, i) => decodeChange(c, `changes[${i}]`)),
    cursor: uint(field(o, 'cursor'), 'cursor'),
    has_more: bool(field(o, 'has_more'), 'has_more'),
  };
}

/** Parses a sync request: version first, then the shape. Throws {@link ProtocolError}. */
export function decodeRequest(text: string): SyncRequest {
  const o = readVersioned(text);
  return {
    protocol_version: PROTOCOL_VERSION,
    device: uuid(field(o, 'device'), 'device'),
    ops: list(field(o, 'ops'), 'ops').map((op, i) => decodeOp(op, `ops[${i}]`)),
    cursor: uint(field(o, 'cursor'), 'cursor'),
    pull_limit: opt(field(o, 'pull_limit'), (n) => uint(n, 'pull_limit', U32_MAX)),
  };
}

/** The request body to send: compact JSON. */
export function encodeRequest(request: SyncRequest): string {
  return JSON.stringify(request);
}
