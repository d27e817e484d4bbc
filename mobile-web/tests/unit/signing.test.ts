/**
 * Signing on the phone (PROTOCOL.md §12, §14, §15), with fake-indexeddb and an in-memory
 * authority: the strokes blob (canonical bytes, validated), the `sign` op stored in one
 * transaction with its strokes and their pending upload, the push that stops before an op whose
 * strokes wait (and the sync loop that uploads them first), the `withdraw` op, the letter
 * statement, and where a letter stands for an expert (words on the current hash vs superseded).
 */
import 'fake-indexeddb/auto';
import Dexie from 'dexie';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Template } from '../../src/api/types';
import {
  decodeResponse,
  importPublicJwk,
  letterStatement,
  letterStatus,
  parseStrokes,
  readLetter,
  readSignature,
  sectionHash,
  serializeStrokes,
  strokesFromPad,
  strokesProblem,
  strokesRef,
  STROKES_MEDIA_TYPE,
  verifySignature,
  type EntityState,
  type Op,
  type Policy,
  type Signer,
  type StrokesBlob,
  type SyncRequest,
} from '../../src/protocol';
import { openDb, type YanshouDb } from '../../src/store/db';
import { applyResponse, LocalRefusal, loadMeta, loadRecord, makeOp, queuedOps } from '../../src/store/replica';
import { strokesOf } from '../../src/store/queries';
import { buildRescueFile } from '../../src/store/rescue';
import { notReadyText, readiness } from '../../src/signing/readiness';
import { giveOpinion, signSection, withdrawSection } from '../../src/signing/sign';
import { status, syncNow } from '../../src/sync/engine';
import { TestServer } from './protocolServer';

const RECORD = '00000000-0000-0000-0000-0000000000e1';
const LETTER = '00000000-0000-0000-0000-0000000000f1';
const SERVER_DEVICE = '00000000-0000-0000-0000-000000000000';
const A = '00000000-0000-0000-0000-00000000000a';
const SECTION = 'forestry';
const INSPECTOR: Signer = { user: 'u-1', name: '赵林业', role: 'department_inspector', department: 'forestry', specialty: null };
const EXPERT: Signer = { user: 'u-x', name: '钱专家', role: 'expert', department: null, specialty: 'forestry' };

let n = 0;
let dbs: YanshouDb[] = [];
function freshDb(): YanshouDb {
  const db = openDb(`signing-${++n}`);
  dbs.push(db);
  return db;
}
beforeEach(() => {
  dbs = [];
});
afterEach(async () => {
  vi.unstubAllGlobals();
  for (const db of dbs) {
    db.close();
    await Dexie.delete(db.name);
  }
});

const BLOB: StrokesBlob = strokesFromPad(
  [
    { points: [{ x: 10.4, y: 20.6, time: 1_000_500 }, { x: 30, y: 40, time: 1_000_516 }] },
    { points: [{ x: 50, y: 60, time: 1_000_700 }] },
  ],
  300,
  200,
);

// ───────────── strokes blobs ─────────────

describe('strokes blobs (§14)', () => {
  it('are made from the pad in integers, t from the first point, and serialised canonically', () => {
    expect(BLOB).toEqual({
      format: 'yanshou-strokes/1',
      width: 300,
      height: 200,
      strokes: [{ points: [[10, 21, 0], [30, 40, 16]] }, { points: [[50, 60, 200]] }],
    });
    const bytes = serializeStrokes(BLOB);
    // Do not edit: the bytes the statement's hash covers are the canonical JSON (§3).
    expect(new TextDecoder().decode(bytes)).toBe(
      '{"format":"yanshou-strokes/1","height":200,"strokes":[{"points":[[10,21,0],[30,40,16]]},{"points":[[50,60,200]]}],"width":300}',
    );
    expect(strokesRef(bytes)).toEqual({ sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length });
    expect(parseStrokes(bytes)).toEqual(BLOB);
    expect(STROKES_MEDIA_TYPE).toBe('application/vnd.yanshou.strokes+json');
  });

  it('keep points inside the pad and time never decreasing, whatever the pointer and clock did', () => {
    const b = strokesFromPad(
      [{ points: [{ x: -3, y: 250, time: 5000 }, { x: 400.6, y: 10, time: 4990 }, { x: 5, y: 5, time: 5020 }] }],
      300,
      200,
    );
    expect(b.strokes[0]?.points).toEqual([
      [0, 200, 0],
      [300, 10, 0],
      [5, 5, 20],
    ]);
    expect(strokesProblem(b)).toBeNull();
  });

  it('refuse an empty pad, a pad of no size and too many points', () => {
    expect(() => strokesFromPad([], 300, 200)).toThrow('请先在签字板上签名');
    expect(() => strokesFromPad([{ points: [] }], 300, 200)).toThrow('请先在签字板上签名');
    expect(() => strokesFromPad([{ points: [{ x: 1, y: 1, time: 0 }] }], 0, 200)).toThrow('尺寸无效');
    const many = Array.from({ length: 20_001 }, (_, i) => ({ x: 1, y: 1, time: i }));
    expect(() => strokesFromPad([{ points: many }], 300, 200)).toThrow('笔迹过长');
  });

  it('are validated as the server validates them at the upload finish', () => {
    const ok = { format: 'yanshou-strokes/1', width: 10, height: 10, strokes: [{ points: [[0, 0, 0]] }] };
    expect(strokesProblem(ok)).toBeNull();
    const bad: [unknown, RegExp][] = [
      [{ ...ok, format: 'svg' }, /format/],
      [{ ...ok, width: 0 }, /width/],
      [{ ...ok, height: 4097 }, /height/],
      [{ ...ok, width: 1.5 }, /width/],
      [{ ...ok, strokes: [] }, /non-empty/],
      [{ ...ok, strokes: [{ points: [] }] }, /no points/],
      [{ ...ok, strokes: [{ points: [[11, 0, 0]] }] }, /outside/],
      [{ ...ok, strokes: [{ points: [[1.5, 0, 0]] }] }, /outside/],
      [{ ...ok, strokes: [{ points: [[0, 0, 5]] }, { points: [[0, 0, 4]] }] }, /back in time/],
      [{ ...ok, strokes: [{ points: [[0, 0]] }] }, /\[x, y, t\]/],
      [{ ...ok, colour: 'red' }, /unknown member/],
    ];
    for (const [v, why] of bad) expect(strokesProblem(v)).toMatch(why);
    expect(() => serializeStrokes({ ...BLOB, width: 0 })).toThrow('笔迹数据无效');
  });
});

// ───────────── a phone with a record ─────────────

/** The server's own op creating an entity (as a round or the office's draft does). */
function create(server: TestServer, entity: string, type: string, fields: Record<string, unknown>, seq: number): void {
  const res = server.sync({
    protocol_version: 1,
    device: SERVER_DEVICE,
    ops: [
      {
        id: `00000000-0000-0000-0000-0000000000c${seq}`,
        device: SERVER_DEVICE,
        seq,
        hlc: { wall_ms: 1000 + seq, counter: 0 },
        entity,
        kind: 'create',
        entity_type: type,
        fields: fields as Record<string, never>,
      },
    ],
    cursor: 0,
    pull_limit: null,
  });
  expect(res.results[0]?.status).toBe('applied');
}

async function pull(db: YanshouDb, server: TestServer): Promise<void> {
  const meta = await loadMeta(db, A);
  const ops = await queuedOps(db, 500);
  const req: SyncRequest = { protocol_version: 1, device: A, ops, cursor: meta.cursor, pull_limit: null };
  await applyResponse(db, A, ops, decodeResponse(server.handleText(JSON.stringify(req), A)));
}

/** A phone (device A, with its key and session) holding the record and what the server holds. */
async function phone(db: YanshouDb, server: TestServer): Promise<CryptoKeyPair> {
  create(server, RECORD, 'acceptance_record', { mine_id: 'mine-1', mine_name: '黄家山采石场', disposition: 'cancel' }, 1);
  const key = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  await db.meta.put({ key: 'device', value: { id: A, userId: INSPECTOR.user, name: 'test', key } });
  await db.meta.put({
    key: 'session',
    value: {
      user: { id: INSPECTOR.user, username: 'linye', display_name: INSPECTOR.name, role: 'department_inspector', department: 'forestry', township_id: null, specialty: null },
      deviceId: A,
      accessToken: 't0k',
      accessExpiresAt: Date.now() + 3600_000,
      refreshToken: 'r',
      refreshExpiresAt: Date.now() + 86400_000,
    },
  });
  await pull(db, server);
  return key;
}

async function hashNow(db: YanshouDb, entity: string, section: string): Promise<string> {
  const { view } = await loadRecord(db, entity);
  if (!view) throw new Error('no view');
  const h = sectionHash(view, section);
  if (h === null) throw new Error('conflicted');
  return h;
}

async function sign(db: YanshouDb, now = 1_711_850_000_000): Promise<Op> {
  await makeOp(db, A, RECORD, { kind: 'set', field: 'forestry/19.result', value: 'pass' });
  return signSection(db, { deviceId: A, entity: RECORD, section: SECTION, contentHash: await hashNow(db, RECORD, SECTION), signer: INSPECTOR, blob: BLOB, now });
}

describe('signing a section', () => {
  it('queues a sign op whose device signature covers the section hash, signer and strokes, with the strokes in the same transaction', async () => {
    const db = freshDb();
    const server = new TestServer();
    const key = await phone(db, server);
    const hash = (await makeOp(db, A, RECORD, { kind: 'set', field: 'forestry/19.result', value: 'pass' }), await hashNow(db, RECORD, SECTION));
    const op = await signSection(db, { deviceId: A, entity: RECORD, section: SECTION, contentHash: hash, signer: INSPECTOR, blob: BLOB, now: 1_711_850_000_000 });
    if (op.kind !== 'sign') throw new Error('not a sign op');
    expect(op).toMatchObject({ seq: 2, section: SECTION, content_hash: hash });
    const sig = readSignature(op.signature);
    if (typeof sig === 'string') throw new Error(sig);
    const bytes = serializeStrokes(BLOB);
    expect(sig.statement).toEqual({
      purpose: 'section',
      device: A,
      entity: RECORD,
      section: SECTION,
      content_hash: hash,
      signer: { user: 'u-1', name: '赵林业', role: 'department_inspector', department: 'forestry', specialty: null },
      signed_at_ms: 1_711_850_000_000,
      strokes: strokesRef(bytes),
    });
    const jwk = await crypto.subtle.exportKey('jwk', key.publicKey);
    expect(await verifySignature(await importPublicJwk(jwk), sig)).toBe(true);
    const row = await db.strokes.get(strokesRef(bytes).sha256);
    expect(row).toMatchObject({ entity: RECORD, size: bytes.length, state: 'pending', offset: 0, uploadId: null });
    expect(new Uint8Array(row?.bytes ?? new ArrayBuffer(0))).toEqual(bytes);
    const { view } = await loadRecord(db, RECORD);
    expect(view?.signatures[SECTION]?.content_hash).toBe(hash);
  });

  it('stores neither the op nor the strokes when the write fails, and refuses a changed section', async () => {
    const db = freshDb();
    await phone(db, new TestServer());
    await makeOp(db, A, RECORD, { kind: 'set', field: 'forestry/19.result', value: 'pass' });
    const seen = await hashNow(db, RECORD, SECTION);
    // Someone (this phone, another screen) edits the section after the pad opened.
    await makeOp(db, A, RECORD, { kind: 'set', field: 'forestry/19.result', value: 'fail' });
    await expect(
      signSection(db, { deviceId: A, entity: RECORD, section: SECTION, contentHash: seen, signer: INSPECTOR, blob: BLOB }),
    ).rejects.toMatchObject({ code: 'hash_mismatch' });
    expect(await db.strokes.count()).toBe(0);
    expect((await loadMeta(db, A)).nextSeq).toBe(3);
    // A failing write inside the op's transaction takes the strokes with it.
    const hash = await hashNow(db, RECORD, SECTION);
    const failing = makeOp(db, A, RECORD, { kind: 'sign', section: SECTION, content_hash: hash, signature: null }, 5000, {
      tables: [db.strokes],
      write: async () => {
        await db.strokes.put({ sha256: 'a'.repeat(64), entity: RECORD, size: 1, bytes: new ArrayBuffer(1), state: 'pending', uploadId: null, offset: 0, message: null, attempts: 0, nextAt: 0, createdAt: 0 });
        throw new DOMException('the disk is full', 'QuotaExceededError');
      },
    });
    await expect(failing).rejects.toMatchObject({ name: 'StorageError', quota: true });
    expect(await db.strokes.count()).toBe(0);
    expect(await db.outbox.count()).toBe(2);
  });

  it('refuses signing twice and editing a signed section, using no seq', async () => {
    const db = freshDb();
    await phone(db, new TestServer());
    await sign(db);
    const next = (await loadMeta(db, A)).nextSeq;
    await expect(
      signSection(db, { deviceId: A, entity: RECORD, section: SECTION, contentHash: 'a'.repeat(64), signer: INSPECTOR, blob: BLOB }),
    ).rejects.toMatchObject({ code: 'already_signed' });
    await expect(makeOp(db, A, RECORD, { kind: 'set', field: 'forestry/19.result', value: 'fail' })).rejects.toBeInstanceOf(LocalRefusal);
    expect((await loadMeta(db, A)).nextSeq).toBe(next);
  });
});

describe('the push and pending strokes', () => {
  it('stops before the first op whose strokes are not uploaded; the ops before it go', async () => {
    const db = freshDb();
    await phone(db, new TestServer());
    await sign(db);
    await makeOp(db, A, RECORD, { kind: 'set', field: 'water_resources/14.result', value: 'pass' });
    expect((await queuedOps(db, 500)).map((o) => o.kind)).toEqual(['set']);
    const sha = strokesRef(serializeStrokes(BLOB)).sha256;
    await db.strokes.update(sha, { state: 'complete' });
    expect((await queuedOps(db, 500)).map((o) => o.kind)).toEqual(['set', 'sign', 'set']);
    // Strokes the server refused do not hold the queue for ever: the op goes and comes back refused.
    await db.strokes.update(sha, { state: 'refused' });
    expect((await queuedOps(db, 500)).map((o) => o.kind)).toEqual(['set', 'sign', 'set']);
  });

  it('the sync loop uploads the strokes first, then pushes the sign op; the server holds both', async () => {
    const db = freshDb();
    const held = new Map<string, Uint8Array>();
    const uploadsFor: string[] = [];
    // The authority refuses a signature whose strokes it does not hold (strokes_missing).
    const policy: Policy = (_type, op) => {
      if (op.kind !== 'sign') return null;
      const sig = readSignature(op.signature);
      const sha = typeof sig === 'string' ? null : (sig.statement['strokes'] as { sha256?: string } | null)?.sha256;
      return sha && held.has(sha) ? null : { code: 'strokes_missing', message: 'the strokes are not uploaded' };
    };
    const server = new TestServer(policy);
    await phone(db, server);
    await sign(db);
    const order: string[] = [];
    let id = 0;
    const pending = new Map<string, { sha: string; size: number; parts: Uint8Array[] }>();
    vi.stubGlobal('fetch', async (input: string, init: RequestInit = {}) => {
      const path = String(input).slice(String(input).indexOf('/api/v1') + 7);
      const json = (v: unknown, s = 200) => new Response(JSON.stringify(v), { status: s, headers: { 'content-type': 'application/json' } });
      if (path === '/sync') {
        const body = String(init.body);
        order.push(`sync [${(JSON.parse(body) as SyncRequest).ops.map((o) => o.kind).join(', ')}]`);
        return new Response(server.handleText(body, A), { status: 200 });
      }
      if (path === '/mines' || path === '/departments' || path === '/townships') return json([]);
      if (path === '/uploads/limits') return json({ chunk_max_bytes: 64, file_max_bytes: 1000, content_types: ['image/jpeg'] });
      if (path === '/uploads' && init.method === 'POST') {
        const b = JSON.parse(String(init.body)) as { sha256: string; size: number; content_type: string; record_id: string };
        order.push(`upload ${b.content_type}`);
        uploadsFor.push(b.record_id);
        const u = `u${++id}`;
        pending.set(u, { sha: b.sha256, size: b.size, parts: [] });
        return json({ id: u, offset: 0, size: b.size, sha256: b.sha256, complete: false }, 201);
      }
      const m = /^\/uploads\/(u\d+)(\/finish)?$/.exec(path);
      const u = m?.[1] ? pending.get(m[1]) : undefined;
      if (u && init.method === 'PATCH') {
        const chunk = new Uint8Array(init.body as Uint8Array);
        u.parts.push(chunk);
        const got = u.parts.reduce((s, p) => s + p.length, 0);
        return new Response(null, { status: 204, headers: { 'upload-offset': String(got) } });
      }
      if (u && m?.[2]) {
        const all = Buffer.concat(u.parts);
        const text = new TextDecoder().decode(all);
        if (strokesProblem(JSON.parse(text)) !== null) return json({ error: { code: 'strokes_refused', message: 'bad' } }, 422);
        held.set(u.sha, all);
        order.push('finish');
        return json({ sha256: u.sha, size: u.size });
      }
      return json({ error: { code: 'not_found', message: path } }, 404);
    });
    await syncNow(db);
    await syncNow(db);
    expect(status.lastError).toBeNull();
    expect(order.slice(0, 3)).toEqual([`upload ${STROKES_MEDIA_TYPE}`, 'finish', 'sync [set, sign]']);
    expect(uploadsFor).toEqual([RECORD]);
    expect(Buffer.from([...held.values()][0] ?? [])).toEqual(Buffer.from(serializeStrokes(BLOB)));
    expect(server.entities[RECORD]?.signatures[SECTION]).toBeDefined();
    expect(await db.outbox.count()).toBe(0);
    expect(await db.rejections.count()).toBe(0);
    expect((await db.strokes.toArray()).map((r) => r.state)).toEqual(['complete']);
    expect(status.pendingStrokes).toBe(0);
  });

  it('the rescue file carries strokes not yet uploaded, byte for byte', async () => {
    const db = freshDb();
    await phone(db, new TestServer());
    await sign(db);
    const file = await buildRescueFile(db, 'linye', new Date(0));
    expect(file.ops.map((o) => (o as Op).kind)).toEqual(['set', 'sign']);
    expect(file.strokes_not_uploaded).toHaveLength(1);
    const b64 = file.strokes_not_uploaded[0]?.bytes_base64url ?? '';
    expect(Buffer.from(b64, 'base64url')).toEqual(Buffer.from(serializeStrokes(BLOB)));
  });
});

describe('handwriting drawn on another device', () => {
  it('is fetched by its hash, kept when the bytes hash to the name, and ignored otherwise', async () => {
    const a = freshDb();
    const server = new TestServer();
    await phone(a, server);
    await makeOp(a, A, RECORD, { kind: 'set', field: 'forestry/19.result', value: 'pass' });
    const hash = await hashNow(a, RECORD, SECTION);
    await signSection(a, { deviceId: A, entity: RECORD, section: SECTION, contentHash: hash, signer: INSPECTOR, blob: BLOB, now: 1 });
    const { view } = await loadRecord(a, RECORD);
    const bytes = serializeStrokes(BLOB);
    const sha = strokesRef(bytes).sha256;

    const other = freshDb();
    expect((await strokesOf(other, view)).size).toBe(0);
    const forged = serializeStrokes(strokesFromPad([{ points: [{ x: 1, y: 1, time: 0 }] }], 10, 10));
    const wrong = await strokesOf(other, view, async () => new TextDecoder().decode(forged));
    expect(wrong.size).toBe(0);
    expect(await other.strokes.get(sha)).toBeUndefined();
    const offline = await strokesOf(other, view, async () => {
      throw new TypeError('Failed to fetch');
    });
    expect(offline.size).toBe(0);
    const asked: string[] = [];
    const fetched = await strokesOf(other, view, async (s) => {
      asked.push(s);
      return new TextDecoder().decode(bytes);
    });
    expect(asked).toEqual([sha]);
    expect(fetched.get(sha)).toEqual(BLOB);
    expect(await other.strokes.get(sha)).toMatchObject({ state: 'complete', size: bytes.length });
    // Kept: the next look needs no network.
    expect((await strokesOf(other, view)).get(sha)).toEqual(BLOB);
  });
});

describe('withdrawing a signature', () => {
  it('queues withdraw {section, reason}; the section is editable again and must be signed again', async () => {
    const db = freshDb();
    const server = new TestServer();
    await phone(db, server);
    await sign(db);
    await db.strokes.toCollection().modify({ state: 'complete' });
    await pull(db, server);
    expect(server.entities[RECORD]?.signatures[SECTION]).toBeDefined();
    await expect(withdrawSection(db, { deviceId: A, entity: RECORD, section: SECTION, reason: '  ' })).rejects.toThrow('原因');
    const op = await withdrawSection(db, { deviceId: A, entity: RECORD, section: SECTION, reason: ' 第19项结论填错 ' });
    expect(op).toMatchObject({ kind: 'withdraw', section: SECTION, reason: '第19项结论填错' });
    let { view } = await loadRecord(db, RECORD);
    expect(view?.signatures[SECTION]).toBeUndefined();
    await makeOp(db, A, RECORD, { kind: 'set', field: 'forestry/19.result', value: 'fail' });
    await pull(db, server);
    ({ view } = await loadRecord(db, RECORD));
    expect(view?.withdrawals?.map((w) => w.reason)).toEqual(['第19项结论填错']);
    expect(view?.fields['forestry/19.result']?.value).toBe('fail');
    await expect(withdrawSection(db, { deviceId: A, entity: RECORD, section: SECTION, reason: '再撤' })).rejects.toMatchObject({ code: 'not_signed' });
  });
});

describe('readiness to sign (mirrors the server’s incomplete_section)', () => {
  const template: Template = {
    id: 't',
    version: '1',
    title: '验收表',
    note: null,
    sections: [
      {
        department: 'forestry',
        name: '林业局',
        required: true,
        applies_to: [],
        items: [
          { number: 19, title: '复绿', criterion: null, methods: [], photo: 'required', applies_to: [], note: null, parts: [{ key: 'result', label: null, kind: 'pass_fail', not_applicable_allowed: true }] },
          { number: 20, title: '成活率', criterion: null, methods: [], photo: 'none', applies_to: [], note: null, parts: [{ key: 'rate', label: null, kind: 'number', unit: '%', rule: { op: 'ge', threshold: { kind: 'design_value' } } }] },
          { number: 21, title: '说明', criterion: null, methods: [], photo: 'none', applies_to: [], note: null, parts: [{ key: 'text', label: null, kind: 'text' }] },
          { number: 22, title: '延续才有', criterion: null, methods: [], photo: 'none', applies_to: ['continue'], note: null, parts: [{ key: 'result', label: null, kind: 'pass_fail', not_applicable_allowed: false }] },
        ],
      },
    ],
  };

  it('needs every deciding answer (and the design value a rule compares with); text and other dispositions do not count', async () => {
    const db = freshDb();
    await phone(db, new TestServer());
    const view = async () => (await loadRecord(db, RECORD)).view as EntityState;
    let r = readiness(await view(), template, 'forestry');
    expect(r).toMatchObject({ missing: [19, 20], items: 3, ready: false });
    expect(notReadyText(r)).toBe('还不能签字：第 19、20 项还没有填写结论。');
    await makeOp(db, A, RECORD, { kind: 'set', field: 'forestry/19.result', value: 'fail' });
    await makeOp(db, A, RECORD, { kind: 'set', field: 'forestry/20.rate', value: '85' });
    r = readiness(await view(), template, 'forestry');
    expect(r.missing).toEqual([20]);
    await makeOp(db, A, RECORD, { kind: 'set', field: 'forestry/20.rate.design', value: '80' });
    r = readiness(await view(), template, 'forestry');
    expect(r).toMatchObject({ missing: [], ready: true });
    expect(r.hash).toBe(sectionHash(await view(), 'forestry'));
  });
});

// ───────────── the opinion letter ─────────────

function letterFields(text: string): Record<string, unknown> {
  return {
    round_id: RECORD,
    record: RECORD,
    mine_id: 'mine-1',
    mine_name: '黄家山采石场',
    licence_no: 'C36',
    township_id: 't-1',
    status: 'draft',
    issued: null,
    'letter/number': '上整治〔2025〕7号',
    'letter/title': '黄家山采石场矿山地质环境恢复治理验收合格意见书',
    'letter/basis': ['《矿山地质环境保护规定》'],
    'letter/date': '2025-04-01',
    'letter/organiser': '上高县矿山整治办',
    'letter/panel': [{ user: EXPERT.user, name: EXPERT.name, specialty: 'forestry', title: '高级工程师', employer: '省林科院' }],
    'letter/method': '查资料、现场查看',
    'letter/situation': text,
    'letter/opinions': '治理工程已完成。',
    'letter/problems': '',
    'letter/conclusion': 'pass',
    'letter/record_hash': 'b'.repeat(64),
  };
}

describe('letter statements and where a letter stands (§15)', () => {
  it('a signing word names the strokes and an empty reason; a declining one a reason and no strokes', () => {
    const ref = strokesRef(serializeStrokes(BLOB));
    const base = { device: A, letter: LETTER, contentHash: 'c'.repeat(64), signer: EXPERT, signedAtMs: 7 };
    expect(letterStatement({ ...base, decision: 'sign', reason: null, strokes: ref })).toEqual({
      purpose: 'letter',
      device: A,
      letter: LETTER,
      content_hash: 'c'.repeat(64),
      decision: 'sign',
      reason: '',
      signer: { user: 'u-x', name: '钱专家', role: 'expert', department: null, specialty: 'forestry' },
      signed_at_ms: 7,
      strokes: ref,
    });
    expect(letterStatement({ ...base, decision: 'decline', reason: ' 问题未整改 ', strokes: null })).toMatchObject({
      decision: 'decline',
      reason: '问题未整改',
      strokes: null,
    });
    expect(() => letterStatement({ ...base, decision: 'decline', reason: ' ', strokes: null })).toThrow();
    expect(() => letterStatement({ ...base, decision: 'sign', reason: null, strokes: null })).toThrow();
  });

  it('待审阅 → 已签字 (queued offline) → 已修改待重签 after an edit (the old word superseded) → 已出具', async () => {
    const db = freshDb();
    const server = new TestServer();
    await phone(db, server);
    await db.meta.put({ key: 'device', value: { id: A, userId: EXPERT.user, name: 'test', key: (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as CryptoKeyPair } });
    create(server, LETTER, 'opinion_letter', letterFields('矿区面积 2.3 公顷。'), 2);
    await pull(db, server);
    const state = async () => readLetter((await loadRecord(db, LETTER)).view as EntityState);
    let letter = await state();
    expect(letter.hash).toBe(sectionHash((await loadRecord(db, LETTER)).view as EntityState, 'letter'));
    expect(letterStatus(letter, EXPERT.user)).toBe('review');
    expect(letter.panel[0]?.name).toBe('钱专家');

    const op = await giveOpinion(db, { deviceId: A, letter: LETTER, record: RECORD, contentHash: letter.hash ?? '', decision: 'sign', reason: null, signer: EXPERT, blob: BLOB });
    expect(op).toMatchObject({ kind: 'add', field: 'experts/opinions' });
    expect(await db.strokes.get(strokesRef(serializeStrokes(BLOB)).sha256)).toMatchObject({ entity: RECORD, state: 'pending' });
    letter = await state();
    expect(letterStatus(letter, EXPERT.user)).toBe('signed');
    expect(letter.words.map((w) => [w.decision, w.current])).toEqual([['sign', true]]);
    await expect(
      giveOpinion(db, { deviceId: A, letter: LETTER, record: RECORD, contentHash: letter.hash ?? '', decision: 'decline', reason: '不同意', signer: EXPERT, blob: null }),
    ).rejects.toMatchObject({ code: 'already_signed' });

    // Uploaded and pushed, then the office edits the text: the word stays, superseded.
    await db.strokes.toCollection().modify({ state: 'complete' });
    await pull(db, server);
    expect(server.entities[LETTER]?.sets['experts/opinions']).toBeDefined();
    serverSet(server, LETTER, 'letter/situation', '矿区面积 2.4 公顷。', 3);
    await pull(db, server);
    letter = await state();
    expect(letterStatus(letter, EXPERT.user)).toBe('resign');
    expect(letter.words.map((w) => w.current)).toEqual([false]);
    await expect(
      giveOpinion(db, { deviceId: A, letter: LETTER, record: RECORD, contentHash: 'd'.repeat(64), decision: 'decline', reason: '面积不符', signer: EXPERT, blob: null }),
    ).rejects.toMatchObject({ code: 'hash_mismatch' });
    await giveOpinion(db, { deviceId: A, letter: LETTER, record: RECORD, contentHash: letter.hash ?? '', decision: 'decline', reason: '面积不符', signer: EXPERT, blob: null });
    letter = await state();
    expect(letterStatus(letter, EXPERT.user)).toBe('declined');
    expect(letter.words.map((w) => [w.decision, w.current, w.reason])).toEqual([
      ['decline', true, '面积不符'],
      ['sign', false, null],
    ]);
    // Someone else's word does not change where this expert stands.
    expect(letterStatus(letter, 'someone-else')).toBe('review');

    await pull(db, server);
    serverSet(server, LETTER, 'status', 'issued', 4);
    await pull(db, server);
    letter = await state();
    expect(letterStatus(letter, EXPERT.user)).toBe('issued');
    await expect(
      giveOpinion(db, { deviceId: A, letter: LETTER, record: RECORD, contentHash: letter.hash ?? '', decision: 'sign', reason: null, signer: EXPERT, blob: BLOB }),
    ).rejects.toMatchObject({ code: 'letter_issued' });
  });
});

/** The server writing a field of an entity (as the office's edits do), from its own device. */
function serverSet(server: TestServer, entity: string, field: string, value: string, seq: number): void {
  const rev = server.entities[entity]?.fields[field]?.rev ?? 0;
  const res = server.sync({
    protocol_version: 1,
    device: SERVER_DEVICE,
    ops: [{ id: `00000000-0000-0000-0000-0000000000d${seq}`, device: SERVER_DEVICE, seq, hlc: { wall_ms: 2000 + seq, counter: 0 }, entity, kind: 'set', field, value, base_rev: rev }],
    cursor: 0,
    pull_limit: null,
  });
  expect(res.results[0]?.status).toBe('applied');
}

describe('the new refusals on the wire', () => {
  it('strokes_missing and letter_issued decode as rejections (an unknown code would fail the whole response)', () => {
    const res = decodeResponse(
      JSON.stringify({
        protocol_version: 1,
        results: [
          { status: 'rejected', op: '00000000-0000-0000-0000-000000000001', code: 'strokes_missing', message: 'strokes not held' },
          { status: 'rejected', op: '00000000-0000-0000-0000-000000000002', code: 'letter_issued', message: 'issued' },
        ],
        changes: [],
        cursor: 0,
        has_more: false,
      }),
    );
    expect(res.results.map((r) => (r.status === 'rejected' ? r.code : r.status))).toEqual(['strokes_missing', 'letter_issued']);
  });
});
