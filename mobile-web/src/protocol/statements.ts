/**
 * The statements a person signs on the phone (PROTOCOL.md §12, §15), and the opinion letter
 * read from its entity.
 *
 * - A **section** statement: an inspector's (or township officer's) signature of one section of
 *   a record as shown, with the section hash they saw and their handwriting (`strokes`).
 * - A **letter** statement: an expert's word on an opinion letter (`decision` `sign` with
 *   handwriting, or `decline` with a reason), over the letter's hash (the section hash of
 *   `letter`). Words are elements of the set field `experts/opinions`; a word counts only while
 *   its `content_hash` is the letter's current hash — an edit of the text supersedes it.
 *
 * Pure: values in, values out.
 */
import { sectionHash } from './canonical';
import { readSignature, type DeviceSignature, type Statement } from './signature';
import type { StrokesRef } from './strokes';
import type { EntityState, OpBody } from './types';
import type { Value } from './value';

/** Who signs: `null` where the role has none (an expert has no department). */
export interface Signer {
  user: string;
  name: string;
  role: string;
  department: string | null;
  specialty: string | null;
}

export function signerValue(s: Signer): Value {
  return { user: s.user, name: s.name, role: s.role, department: s.department, specialty: s.specialty };
}

function strokesValue(r: StrokesRef | null): Value {
  return r === null ? null : { sha256: r.sha256, size: r.size };
}

/** The statement of a section signature; `device`, `entity`, `section` and `content_hash` are the op's own. */
export function sectionStatement(a: {
  device: string;
  entity: string;
  section: string;
  contentHash: string;
  signer: Signer;
  signedAtMs: number;
  strokes: StrokesRef;
}): Statement {
  return {
    purpose: 'section',
    device: a.device,
    entity: a.entity,
    section: a.section,
    content_hash: a.contentHash,
    signer: signerValue(a.signer),
    signed_at_ms: a.signedAtMs,
    strokes: strokesValue(a.strokes),
  };
}

export type LetterDecision = 'sign' | 'decline';

/**
 * The statement of an expert's word on a letter: `reason` is required (non-blank) to decline
 * and the empty string when signing (the reference reads it as a string either way); `strokes` names the handwriting when signing, `null` when declining.
 */
export function letterStatement(a: {
  device: string;
  letter: string;
  contentHash: string;
  decision: LetterDecision;
  reason: string | null;
  signer: Signer;
  signedAtMs: number;
  strokes: StrokesRef | null;
}): Statement {
  if (a.decision === 'decline' && (a.reason === null || a.reason.trim() === '')) {
    throw new Error('a declining word needs a reason');
  }
  if (a.decision === 'sign' && a.strokes === null) throw new Error('a signing word needs its strokes');
  return {
    purpose: 'letter',
    device: a.device,
    letter: a.letter,
    content_hash: a.contentHash,
    decision: a.decision,
    reason: a.decision === 'decline' ? (a.reason ?? '').trim() : '',
    signer: signerValue(a.signer),
    signed_at_ms: a.signedAtMs,
    strokes: a.decision === 'sign' ? strokesValue(a.strokes) : null,
  };
}

// ───────────── reading statements back ─────────────

function obj(v: Value | undefined): { [k: string]: Value } | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : null;
}
function str(v: Value | undefined): string | null {
  return typeof v === 'string' ? v : null;
}

/** The signer a statement names (members that are not strings read as null). */
export function readSigner(st: Statement): Signer | null {
  const s = obj(st['signer']);
  if (!s) return null;
  const user = str(s['user']);
  if (user === null) return null;
  return {
    user,
    name: str(s['name']) ?? '',
    role: str(s['role']) ?? '',
    department: str(s['department']),
    specialty: str(s['specialty']),
  };
}

/** The handwriting a statement names, if any. */
export function readStrokesRef(st: Statement): StrokesRef | null {
  const s = obj(st['strokes']);
  const sha = str(s?.['sha256']);
  const size = s?.['size'];
  return sha !== null && typeof size === 'number' ? { sha256: sha, size } : null;
}

/** A section signature's value read back (`null` if it is not a section statement). */
export interface SectionSignatureInfo {
  signature: DeviceSignature;
  signer: Signer | null;
  signedAtMs: number | null;
  strokes: StrokesRef | null;
}

export function readSectionSignature(v: Value): SectionSignatureInfo | null {
  const sig = readSignature(v);
  if (typeof sig === 'string' || sig.statement.purpose !== 'section') return null;
  const at = sig.statement['signed_at_ms'];
  return {
    signature: sig,
    signer: readSigner(sig.statement),
    signedAtMs: typeof at === 'number' ? at : null,
    strokes: readStrokesRef(sig.statement),
  };
}

/** The strokes a `sign` op or an opinion `add` names: they must be uploaded before it is pushed. */
export function strokesNamedBy(op: OpBody): string | null {
  let v: Value | undefined;
  if (op.kind === 'sign') v = op.signature;
  else if (op.kind === 'add' && op.field === OPINIONS_FIELD) v = op.element;
  if (v === undefined) return null;
  const sig = readSignature(v);
  if (typeof sig === 'string') return null;
  return readStrokesRef(sig.statement)?.sha256 ?? null;
}

// ───────────── the opinion letter (§15) ─────────────

export const LETTER_ENTITY_TYPE = 'opinion_letter';
export const LETTER_SECTION = 'letter';
export const OPINIONS_FIELD = 'experts/opinions';

export interface PanelMember {
  user: string;
  name: string;
  specialty: string;
  title: string;
  employer: string;
}

export type LetterConclusion = 'pass' | 'pass_after_rectification' | 'fail';

export interface Opinion {
  element: Value;
  signature: DeviceSignature;
  decision: LetterDecision;
  reason: string | null;
  signer: Signer | null;
  signedAtMs: number | null;
  contentHash: string;
  strokes: StrokesRef | null;
  /** Given on the letter's current hash (else superseded by an edit of the text). */
  current: boolean;
}

export interface Letter {
  id: string;
  roundId: string | null;
  record: string | null;
  mineName: string;
  licenceNo: string;
  status: 'draft' | 'issued';
  issuedAtMs: number | null;
  number: string;
  title: string;
  basis: string[];
  date: string;
  organiser: string;
  panel: PanelMember[];
  method: string;
  situation: string;
  opinions: string;
  problems: string;
  conclusion: LetterConclusion | null;
  /** The letter's hash (section hash of `letter`); `null` while a text field is in conflict. */
  hash: string | null;
  words: Opinion[];
}

function text(state: EntityState, key: string): string {
  return str(state.fields[key]?.value) ?? '';
}

/** Reads an `opinion_letter` entity (the view, so this phone's pending words count). */
export function readLetter(state: EntityState): Letter {
  const v = (key: string): Value => state.fields[key]?.value ?? null;
  const hash = sectionHash(state, LETTER_SECTION);
  const panelValue = v('letter/panel');
  const panel: PanelMember[] = Array.isArray(panelValue)
    ? panelValue.flatMap((p) => {
        const o = obj(p);
        const user = str(o?.['user']);
        if (!o || user === null) return [];
        return [
          {
            user,
            name: str(o['name']) ?? '',
            specialty: str(o['specialty']) ?? '',
            title: str(o['title']) ?? '',
            employer: str(o['employer']) ?? '',
          },
        ];
      })
    : [];
  const basisValue = v('letter/basis');
  const basis = Array.isArray(basisValue) ? basisValue.filter((b): b is string => typeof b === 'string') : [];
  const issued = obj(v('issued'));
  const at = issued?.['at_ms'];
  const conclusion = str(v('letter/conclusion'));
  const words: Opinion[] = [];
  for (const el of Object.values(state.sets[OPINIONS_FIELD]?.elements ?? {})) {
    const sig = readSignature(el.value);
    if (typeof sig === 'string' || sig.statement.purpose !== 'letter') continue;
    const st = sig.statement;
    const decision = st['decision'];
    const contentHash = str(st['content_hash']);
    if ((decision !== 'sign' && decision !== 'decline') || contentHash === null) continue;
    const signedAt = st['signed_at_ms'];
    words.push({
      element: el.value,
      signature: sig,
      decision,
      reason: str(st['reason']) || null,
      signer: readSigner(st),
      signedAtMs: typeof signedAt === 'number' ? signedAt : null,
      contentHash,
      strokes: readStrokesRef(st),
      current: hash !== null && contentHash === hash,
    });
  }
  // Newest first: what the panel said last is read first.
  words.sort((a, b) => (b.signedAtMs ?? 0) - (a.signedAtMs ?? 0));
  return {
    id: state.id,
    roundId: str(v('round_id')),
    record: str(v('record')),
    mineName: str(v('mine_name')) ?? '',
    licenceNo: str(v('licence_no')) ?? '',
    status: v('status') === 'issued' ? 'issued' : 'draft',
    issuedAtMs: typeof at === 'number' ? at : null,
    number: text(state, 'letter/number'),
    title: text(state, 'letter/title'),
    basis,
    date: text(state, 'letter/date'),
    organiser: text(state, 'letter/organiser'),
    panel,
    method: text(state, 'letter/method'),
    situation: text(state, 'letter/situation'),
    opinions: text(state, 'letter/opinions'),
    problems: text(state, 'letter/problems'),
    conclusion:
      conclusion === 'pass' || conclusion === 'pass_after_rectification' || conclusion === 'fail' ? conclusion : null,
    hash,
    words,
  };
}

/** Where a letter stands for one expert. */
export type LetterStatus = 'issued' | 'signed' | 'declined' | 'resign' | 'review';

/**
 * `issued` once the office issued it; else the expert's latest word on the current hash
 * (`signed` / `declined`); else `resign` when they gave words only on earlier texts (the text
 * changed since: 已修改待重签); else `review` (待审阅).
 */
export function letterStatus(letter: Letter, user: string): LetterStatus {
  if (letter.status === 'issued') return 'issued';
  const mine = letter.words.filter((w) => w.signer?.user === user);
  const now = mine.find((w) => w.current);
  if (now) return now.decision === 'sign' ? 'signed' : 'declined';
  return mine.length > 0 ? 'resign' : 'review';
}

/** Whether `user` is on the letter's panel. */
export function onPanel(letter: Letter, user: string): boolean {
  return letter.panel.some((p) => p.user === user);
}
