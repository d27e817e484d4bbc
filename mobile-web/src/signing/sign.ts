/**
 * Signing on the phone (PROTOCOL.md §12, §14, §15): a section of a record, the withdrawal of
 * one's own section signature, and an expert's word on an opinion letter.
 *
 * A signature is made from what the person drew: the strokes blob is serialised once
 * (canonical JSON), hashed, and its `{sha256, size}` named in the statement the device key
 * signs. The blob's bytes and its pending upload are stored **in the same IndexedDB
 * transaction** as the op that names them (like a photo with its `add`), so a signature is
 * never queued without its handwriting, nor handwriting without its signature. The sync loop
 * uploads the blob before it pushes the op (`queuedOps` stops at an op whose strokes wait).
 */
import type { User } from '../api/types';
import { loadDevice } from '../device/session';
import {
  letterStatement,
  OPINIONS_FIELD,
  readLetter,
  sectionStatement,
  serializeStrokes,
  signatureValue,
  signStatement,
  strokesRef,
  type LetterDecision,
  type Op,
  type Signer,
  type StrokesBlob,
} from '../protocol';
import type { StrokesRow, YanshouDb } from '../store/db';
import { LocalRefusal, loadRecord, makeOp, type AlsoWrite } from '../store/replica';

/** The signer a signed-in user signs as (`null` where the role has none). */
export function signerOf(user: User): Signer {
  return {
    user: user.id,
    name: user.display_name,
    role: user.role,
    department: user.department ?? null,
    specialty: user.specialty ?? null,
  };
}

async function deviceKey(db: YanshouDb, deviceId: string): Promise<CryptoKey> {
  const device = await loadDevice(db);
  if (!device || device.id !== deviceId) throw new LocalRefusal('no_device', '本机尚未登记设备，请联网重新登录');
  return device.key.privateKey;
}

/** The blob's bytes, and the write that stores them with their pending upload. */
function strokesWrite(db: YanshouDb, record: string, blob: StrokesBlob, now: number) {
  const bytes = serializeStrokes(blob);
  const ref = strokesRef(bytes);
  const row: StrokesRow = {
    sha256: ref.sha256,
    entity: record,
    size: ref.size,
    bytes: bytes.buffer,
    state: 'pending',
    uploadId: null,
    offset: 0,
    message: null,
    attempts: 0,
    nextAt: 0,
    createdAt: now,
  };
  const also: AlsoWrite = {
    tables: [db.strokes],
    write: async () => {
      // The same bytes twice cannot happen by hand (times differ); keep an upload that got further.
      if (!(await db.strokes.get(ref.sha256))) await db.strokes.put(row);
    },
  };
  return { ref, also };
}

/**
 * Signs `section` of record `entity` as shown with `contentHash` (the hash of what the person
 * saw), with the handwriting `blob`. Returns the queued `sign` op.
 */
export async function signSection(
  db: YanshouDb,
  a: {
    deviceId: string;
    entity: string;
    section: string;
    contentHash: string;
    signer: Signer;
    blob: StrokesBlob;
    now?: number;
  },
): Promise<Op> {
  const now = a.now ?? Date.now();
  const { ref, also } = strokesWrite(db, a.entity, a.blob, now);
  const statement = sectionStatement({
    device: a.deviceId,
    entity: a.entity,
    section: a.section,
    contentHash: a.contentHash,
    signer: a.signer,
    signedAtMs: now,
    strokes: ref,
  });
  const sig = await signStatement(await deviceKey(db, a.deviceId), statement);
  return makeOp(
    db,
    a.deviceId,
    a.entity,
    { kind: 'sign', section: a.section, content_hash: a.contentHash, signature: signatureValue(sig) },
    now,
    also,
  );
}

/** Takes back one's own signature of `section`, with the reason (required). */
export async function withdrawSection(
  db: YanshouDb,
  a: { deviceId: string; entity: string; section: string; reason: string; now?: number },
): Promise<Op> {
  const reason = a.reason.trim();
  if (reason === '') throw new LocalRefusal('invalid_op', '请填写撤回签字的原因');
  return makeOp(db, a.deviceId, a.entity, { kind: 'withdraw', section: a.section, reason }, a.now);
}

/**
 * An expert's word on letter `letter` as read with `contentHash`: `sign` with the handwriting
 * `blob` (uploaded for the record of the letter's round, `record`), or `decline` with a reason.
 * Returns the queued `add` to `experts/opinions`.
 */
export async function giveOpinion(
  db: YanshouDb,
  a: {
    deviceId: string;
    letter: string;
    record: string;
    contentHash: string;
    decision: LetterDecision;
    reason: string | null;
    signer: Signer;
    blob: StrokesBlob | null;
    now?: number;
  },
): Promise<Op> {
  const now = a.now ?? Date.now();
  const { view } = await loadRecord(db, a.letter);
  if (!view) throw new LocalRefusal('unknown_entity', '本机还没有这份意见书，请先同步');
  const letter = readLetter(view);
  if (letter.status === 'issued') throw new LocalRefusal('letter_issued', '意见书已出具，不能再签字或拒签');
  if (letter.hash !== a.contentHash) {
    throw new LocalRefusal('hash_mismatch', '意见书内容已修改，请重新审阅后再签字');
  }
  if (letter.words.some((w) => w.current && w.signer?.user === a.signer.user)) {
    throw new LocalRefusal('already_signed', '您已就当前版本的意见书表态');
  }
  let strokes = null;
  let also: AlsoWrite | undefined;
  if (a.decision === 'sign') {
    if (a.blob === null) throw new LocalRefusal('invalid_op', '请先在签字板上签名');
    ({ ref: strokes, also } = strokesWrite(db, a.record, a.blob, now));
  } else if ((a.reason ?? '').trim() === '') {
    throw new LocalRefusal('invalid_op', '请填写拒签的理由');
  }
  const statement = letterStatement({
    device: a.deviceId,
    letter: a.letter,
    contentHash: a.contentHash,
    decision: a.decision,
    reason: a.reason,
    signer: a.signer,
    signedAtMs: now,
    strokes,
  });
  const sig = await signStatement(await deviceKey(db, a.deviceId), statement);
  return makeOp(db, a.deviceId, a.letter, { kind: 'add', field: OPINIONS_FIELD, element: signatureValue(sig) }, now, also);
}
