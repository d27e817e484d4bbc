/**
 * Evidence photos on the phone (fake-indexeddb; `fetch` replaced at the module boundary by an
 * in-memory tus-like upload server): the capture checks, the attestation added with the bytes in
 * one transaction, and the upload queue — resume at the acknowledged offset after a drop, the
 * server's offset after a 409, dedupe, a refused file that does not block the next, state that
 * survives a reopened database, and the schema migration from version 2.
 */
import 'fake-indexeddb/auto';
import Dexie from 'dexie';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createHash } from 'node:crypto';
import {
  decodeResponse,
  importPublicJwk,
  readSignature,
  verifySignature,
  type EntityState,
  type SyncRequest,
} from '../../src/protocol';
import { DB_NAME, openDb, uploadKey, type UploadRow, type YanshouDb } from '../../src/store/db';
import { applyResponse, loadMeta, loadRecord, makeOp, queuedOps } from '../../src/store/replica';
import { buildRescueFile } from '../../src/store/rescue';
import { PhotoRefusal, attachPhoto, photosField, positionOf, removePhoto } from '../../src/upload/capture';
import { backoffMs, runUploads } from '../../src/upload/queue';
import { DEFAULT_LIMITS, checkPhoto, readLimits, sniffImage } from '../../src/upload/sniff';
import { locationText, readFindings, timeText } from '../../src/upload/findings';
import { TestServer } from './protocolServer';
import { status, syncNow } from '../../src/sync/engine';

const RECORD = '00000000-0000-0000-0000-0000000000e1';
const SERVER_DEVICE = '00000000-0000-0000-0000-000000000000';
const A = '00000000-0000-0000-0000-00000000000a';
const FIELD = photosField('forestry', 19);

let n = 0;
let dbs: YanshouDb[] = [];
function freshDb(name = `upload-${++n}`): YanshouDb {
  const db = openDb(name);
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

// ───────────── files ─────────────

const JPEG_HEAD = [0xff, 0xd8, 0xff, 0xe0];
const PNG_HEAD = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** A file of `size` bytes starting with `head` (the rest a pattern of its own `seed`). */
function file(head: number[], size: number, seed = 1): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(new ArrayBuffer(size));
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed * 7) & 0xff;
  out.set(head);
  return out;
}

function sha(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

describe('capture checks (type by magic bytes, size by the announced limit)', () => {
  it('knows JPEG and PNG by their first bytes, whatever the file is called', () => {
    expect(sniffImage(file(JPEG_HEAD, 16))).toEqual({ ok: true, contentType: 'image/jpeg' });
    expect(sniffImage(file(PNG_HEAD, 16))).toEqual({ ok: true, contentType: 'image/png' });
  });

  it('refuses HEIC with its own message, and text named .jpg', () => {
    const heic = new Uint8Array([0, 0, 0, 0x18, ...'ftypheic'.split('').map((c) => c.charCodeAt(0)), 0, 0, 0, 0]);
    const h = sniffImage(heic);
    expect(h.ok).toBe(false);
    if (!h.ok) expect(h.message).toContain('HEIC');
    const text = new TextEncoder().encode('hello, this is not a photo');
    const t = sniffImage(text);
    expect(t.ok).toBe(false);
    if (!t.ok) expect(t.message).toContain('不是 JPEG 或 PNG');
    expect(sniffImage(new Uint8Array(0)).ok).toBe(false);
  });

  it('refuses a file over the announced size, and a type the server no longer lists', () => {
    const limits = { ...DEFAULT_LIMITS, file_max_bytes: 1000 };
    const big = checkPhoto(file(JPEG_HEAD, 16), 1001, limits);
    expect(big.ok).toBe(false);
    if (!big.ok) expect(big.message).toContain('超过服务器允许');
    expect(checkPhoto(file(JPEG_HEAD, 16), 1000, limits).ok).toBe(true);
    expect(checkPhoto(file(PNG_HEAD, 16), 10, { ...limits, content_types: ['image/jpeg'] }).ok).toBe(false);
  });

  it('reads the limits defensively (odd members keep the default)', () => {
    expect(readLimits({ chunk_max_bytes: 4, file_max_bytes: 'x', content_types: [] })).toEqual({
      ...DEFAULT_LIMITS,
      chunk_max_bytes: 4,
    });
    expect(readLimits(null)).toEqual(DEFAULT_LIMITS);
  });

  it('positions travel as decimal strings', () => {
    expect(positionOf({ latitude: 28.2345678912, longitude: 114.9, accuracy: 8.04, altitude: null })).toEqual({
      lat: '28.2345679',
      lon: '114.9000000',
      accuracy_m: '8.0',
      altitude_m: null,
    });
  });
});

// ───────────── the phone and a fake server ─────────────

/** An in-memory upload server with the real one's answers (server/src/api/uploads.rs). */
class FakeUploads {
  limits = { chunk_max_bytes: 1000, file_max_bytes: 30_000_000, content_types: ['image/jpeg', 'image/png'] };
  uploads = new Map<string, { sha256: string; size: number; parts: Uint8Array[]; received: number; done: boolean }>();
  stored = new Map<string, Uint8Array>();
  log: string[] = [];
  /** Refuse the finish of these hashes (`photo_refused`). */
  refuse = new Set<string>();
  /** Throw a network error for the next request matching this (once). */
  dropNext: ((method: string, path: string) => boolean) | null = null;
  /** Apply the next PATCH but lose its answer. */
  loseNextAnswer = false;
  offline = false;
  private next = 1;

  fetch = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = String(input);
    const path = url.slice(url.indexOf('/api/v1') + '/api/v1'.length);
    const method = init.method ?? 'GET';
    this.log.push(`${method} ${path}`);
    if (this.offline) throw new TypeError('Failed to fetch');
    if (this.dropNext?.(method, path)) {
      this.dropNext = null;
      throw new TypeError('network changed');
    }
    const headers = new Headers(init.headers);
    if (headers.get('authorization') !== 'Bearer t0k') return this.error(401, 'unauthenticated', 'no token');
    const json = (status: number, v: unknown, h: Record<string, string> = {}) =>
      new Response(JSON.stringify(v), { status, headers: { 'content-type': 'application/json', ...h } });
    if (method === 'GET' && path === '/uploads/limits') return json(200, this.limits);
    if (method === 'POST' && path === '/uploads') {
      const body = JSON.parse(String(init.body)) as { sha256: string; size: number; content_type: string };
      if (body.size > this.limits.file_max_bytes) return this.error(413, 'upload_too_large', 'too large');
      if (this.stored.has(body.sha256)) {
        return json(200, { offset: body.size, size: body.size, sha256: body.sha256, complete: true });
      }
      const id = `00000000-0000-7000-8000-${String(this.next++).padStart(12, '0')}`;
      this.uploads.set(id, { sha256: body.sha256, size: body.size, parts: [], received: 0, done: false });
      return json(201, { id, offset: 0, size: body.size, sha256: body.sha256, complete: false });
    }
    const m = /^\/uploads\/([0-9a-f-]+)(\/finish)?$/.exec(path);
    const u = m?.[1] ? this.uploads.get(m[1]) : undefined;
    if (!m || !u) return this.error(404, 'not_found', 'upload not found');
    if (method === 'PATCH') {
      expect(headers.get('content-type')).toBe('application/offset+octet-stream');
      const offset = Number(headers.get('upload-offset'));
      const chunk = new Uint8Array(init.body as Uint8Array);
      expect(chunk.length).toBeLessThanOrEqual(this.limits.chunk_max_bytes);
      if (u.done || offset !== u.received) {
        return this.error(409, 'upload_offset_mismatch', 'not the offset', { 'upload-offset': String(u.received) });
      }
      u.parts.push(chunk);
      u.received += chunk.length;
      if (this.loseNextAnswer) {
        this.loseNextAnswer = false;
        throw new TypeError('connection reset');
      }
      return new Response(null, { status: 204, headers: { 'upload-offset': String(u.received) } });
    }
    if (method === 'POST' && m[2]) {
      if (u.received < u.size) {
        return this.error(409, 'upload_incomplete', 'bytes missing', { 'upload-offset': String(u.received) });
      }
      const all = new Uint8Array(u.size);
      let at = 0;
      for (const p of u.parts) {
        all.set(p, at);
        at += p.length;
      }
      if (sha(all) !== u.sha256) return this.error(422, 'hash_mismatch', 'hash differs');
      if (this.refuse.has(u.sha256)) return this.error(422, 'photo_refused', 'the image cannot be decoded');
      u.done = true;
      this.stored.set(u.sha256, all);
      return json(200, { sha256: u.sha256, size: u.size });
    }
    return this.error(405, 'method_not_allowed', method);
  };

  private error(status: number, code: string, message: string, h: Record<string, string> = {}): Response {
    return new Response(JSON.stringify({ error: { code, message } }), {
      status,
      headers: { 'content-type': 'application/json', ...h },
    });
  }
}

/** A phone logged in as device A holding the record, with a device key. */
async function phone(db: YanshouDb, server = new TestServer()): Promise<CryptoKeyPair> {
  const state = server.sync({
    protocol_version: 1,
    device: SERVER_DEVICE,
    ops: [
      {
        id: '00000000-0000-0000-0000-0000000000c1',
        device: SERVER_DEVICE,
        seq: 1,
        hlc: { wall_ms: 1000, counter: 0 },
        entity: RECORD,
        kind: 'create',
        entity_type: 'acceptance_record',
        fields: { mine_id: 'mine-1', mine_name: '黄家山采石场' },
      },
    ],
    cursor: 0,
    pull_limit: null,
  });
  expect(state.results[0]?.status).toBe('applied');
  const req: SyncRequest = { protocol_version: 1, device: A, ops: [], cursor: 0, pull_limit: null };
  await applyResponse(db, A, [], decodeResponse(server.handleText(JSON.stringify(req), A)), 2000);
  const key = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  await db.meta.put({ key: 'device', value: { id: A, userId: 'u', name: 'test', key } });
  await db.meta.put({
    key: 'session',
    value: {
      user: { id: 'u', username: 'linye', display_name: '林业', role: 'department_inspector', department: 'forestry', township_id: null, specialty: null },
      deviceId: A,
      accessToken: 't0k',
      accessExpiresAt: Date.now() + 3600_000,
      refreshToken: 'r',
      refreshExpiresAt: Date.now() + 86400_000,
    },
  });
  return key;
}

const noThumb = { position: async () => null, thumb: async () => null };

async function attach(db: YanshouDb, bytes: Uint8Array<ArrayBuffer>, opts = {}) {
  return attachPhoto(db, A, RECORD, FIELD, new Blob([bytes]), { ...noThumb, ...opts });
}

async function row(db: YanshouDb, bytes: Uint8Array): Promise<UploadRow | undefined> {
  return db.uploads.get(uploadKey(RECORD, sha(bytes)));
}

describe('taking a photo into an item', () => {
  it('adds a signed attestation to the evidence set in the transaction that stores the bytes', async () => {
    const db = freshDb();
    const key = await phone(db);
    const bytes = file(JPEG_HEAD, 2500);
    const position = { lat: '28.2345678', lon: '114.9012345', accuracy_m: '8.0', altitude_m: null };
    const op = await attach(db, bytes, { now: 1_711_850_000_000, position: async () => position });
    expect(op).toMatchObject({ kind: 'add', field: FIELD, seq: 1 });
    if (op.kind !== 'add') throw new Error('not an add');
    const sig = readSignature(op.element);
    if (typeof sig === 'string') throw new Error(sig);
    expect(sig.statement).toEqual({
      purpose: 'photo',
      device: A,
      sha256: sha(bytes),
      size: 2500,
      content_type: 'image/jpeg',
      captured_at_ms: 1_711_850_000_000,
      position,
    });
    const jwk = await crypto.subtle.exportKey('jwk', key.publicKey);
    expect(await verifySignature(await importPublicJwk(jwk), sig)).toBe(true);
    expect((await db.photos.get(sha(bytes)))?.bytes?.byteLength).toBe(2500);
    expect(await row(db, bytes)).toMatchObject({ state: 'pending', offset: 0, uploadId: null });
    const { view } = await loadRecord(db, RECORD);
    expect(Object.keys(view?.sets[FIELD]?.elements ?? {})).toHaveLength(1);
  });

  it('refuses HEIC and an over-limit file before storing anything; the cached limit counts offline', async () => {
    const db = freshDb();
    await phone(db);
    const heic = new Uint8Array(new ArrayBuffer(40));
    heic.set([0, 0, 0, 0x18, 0x66, 0x74, 0x79, 0x70, 0x68, 0x65, 0x69, 0x63]);
    await expect(attach(db, heic)).rejects.toThrow(/HEIC/);
    await db.meta.put({ key: 'uploadLimits', value: { chunk_max_bytes: 10, file_max_bytes: 100, content_types: ['image/jpeg'] } });
    await expect(attach(db, file(JPEG_HEAD, 101))).rejects.toBeInstanceOf(PhotoRefusal);
    expect(await db.outbox.count()).toBe(0);
    expect(await db.photos.count()).toBe(0);
    expect((await loadMeta(db, A)).nextSeq).toBe(1);
  });

  it('one photo on two items is one upload; taken off one item, it is still sent for the other', async () => {
    const db = freshDb();
    await phone(db);
    const bytes = file(JPEG_HEAD, 1200, 7);
    const add = await attach(db, bytes);
    await attachPhoto(db, A, RECORD, photosField('forestry', 20), new Blob([bytes]), noThumb);
    expect(await db.uploads.count()).toBe(1);
    if (add.kind !== 'add') throw new Error('not an add');
    await removePhoto(db, A, RECORD, FIELD, add.element);
    expect(await row(db, bytes)).toMatchObject({ state: 'pending' });
    await expect(attach(db, file(JPEG_HEAD, 1200, 7))).resolves.toMatchObject({ kind: 'add' });
    await expect(attach(db, file(JPEG_HEAD, 1200, 7))).rejects.toThrow('这张照片已在本项中');
  });

  it('a full disk stores neither the op nor the bytes, and says so', async () => {
    const db = freshDb();
    await phone(db);
    const element = { alg: 'ES256', sig: 'x', statement: { purpose: 'photo', device: A } };
    const failing = makeOp(db, A, RECORD, { kind: 'add', field: FIELD, element }, 5000, {
      tables: [db.photos],
      write: async () => {
        await db.photos.put({ sha256: 'f'.repeat(64), size: 1, contentType: 'image/jpeg', bytes: new ArrayBuffer(1), thumb: null, capturedAt: 1 });
        throw new DOMException('the disk is full', 'QuotaExceededError');
      },
    });
    await expect(failing).rejects.toMatchObject({ name: 'StorageError', quota: true });
    expect(await db.outbox.count()).toBe(0);
    expect(await db.photos.count()).toBe(0);
    expect((await loadMeta(db, A)).nextSeq).toBe(1);
  });

  it('a photo taken off its item before upload is not sent; put back, it is', async () => {
    const db = freshDb();
    await phone(db);
    const bytes = file(JPEG_HEAD, 1200);
    const add = await attach(db, bytes);
    if (add.kind !== 'add') throw new Error('not an add');
    const op = await removePhoto(db, A, RECORD, FIELD, add.element);
    expect(op).toMatchObject({ kind: 'remove', observed: [add.id] });
    expect(await row(db, bytes)).toMatchObject({ state: 'dropped' });
    const server = new FakeUploads();
    vi.stubGlobal('fetch', server.fetch);
    expect(await runUploads(db)).toMatchObject({ completed: 0 });
    expect(server.log.filter((l) => l.startsWith('POST /uploads'))).toEqual([]);
    await attach(db, bytes);
    expect(await row(db, bytes)).toMatchObject({ state: 'pending' });
    expect(await runUploads(db)).toMatchObject({ completed: 1 });
  });
});

describe('the upload queue', () => {
  it('uploads in chunks of the announced size, finishes, then drops the original and keeps the thumbnail', async () => {
    const db = freshDb();
    await phone(db);
    const bytes = file(JPEG_HEAD, 2500);
    await attach(db, bytes, { thumb: async () => new Uint8Array([1, 2, 3]).buffer });
    const server = new FakeUploads();
    vi.stubGlobal('fetch', server.fetch);
    expect(await runUploads(db)).toEqual({ completed: 1, refused: 0, failed: 0, offline: false });
    expect(server.log.filter((l) => l.startsWith('PATCH'))).toHaveLength(3);
    expect(server.stored.get(sha(bytes))).toEqual(bytes);
    expect(await row(db, bytes)).toMatchObject({ state: 'complete', offset: 2500 });
    const photo = await db.photos.get(sha(bytes));
    expect(photo?.bytes).toBeNull();
    expect(photo?.thumb?.byteLength).toBe(3);
  });

  it('resumes at the acknowledged offset after a dropped connection', async () => {
    const db = freshDb();
    await phone(db);
    const bytes = file(JPEG_HEAD, 3500);
    await attach(db, bytes);
    const server = new FakeUploads();
    vi.stubGlobal('fetch', server.fetch);
    let patches = 0;
    server.dropNext = (method) => method === 'PATCH' && ++patches === 3;
    expect(await runUploads(db)).toMatchObject({ completed: 0, offline: true });
    expect(await row(db, bytes)).toMatchObject({ state: 'pending', offset: 2000 });
    server.log = [];
    expect(await runUploads(db)).toMatchObject({ completed: 1 });
    // No second create, no byte sent twice: the run continued at 2000.
    expect(server.log.filter((l) => l === 'POST /uploads')).toEqual([]);
    expect(server.log.filter((l) => l.startsWith('PATCH'))).toHaveLength(2);
    expect(server.stored.get(sha(bytes))).toEqual(bytes);
  });

  it('a lost answer to a chunk the server applied: the 409 gives its offset and the upload continues there', async () => {
    const db = freshDb();
    await phone(db);
    const bytes = file(JPEG_HEAD, 2500);
    await attach(db, bytes);
    const server = new FakeUploads();
    vi.stubGlobal('fetch', server.fetch);
    server.loseNextAnswer = true;
    expect(await runUploads(db)).toMatchObject({ offline: true });
    // The phone acknowledged nothing; the server holds 1000 bytes.
    expect(await row(db, bytes)).toMatchObject({ offset: 0 });
    expect(await runUploads(db)).toMatchObject({ completed: 1 });
    expect(server.stored.get(sha(bytes))).toEqual(bytes);
    const id = [...server.uploads.keys()][0] ?? '';
    expect(server.log).toContain(`PATCH /uploads/${id}`);
    expect(server.uploads.get(id)?.parts.map((p) => p.length)).toEqual([1000, 1000, 500]);
  });

  it('dedupe: a photo the server already holds is complete at once, nothing sent', async () => {
    const db = freshDb();
    await phone(db);
    const bytes = file(JPEG_HEAD, 2500);
    await attach(db, bytes);
    const server = new FakeUploads();
    server.stored.set(sha(bytes), bytes);
    vi.stubGlobal('fetch', server.fetch);
    expect(await runUploads(db)).toMatchObject({ completed: 1 });
    expect(server.log.filter((l) => l.startsWith('PATCH'))).toEqual([]);
    expect(await row(db, bytes)).toMatchObject({ state: 'complete' });
  });

  it('a refused file is marked with the server reason and does not block the next', async () => {
    const db = freshDb();
    await phone(db);
    const bad = file(JPEG_HEAD, 1500, 1);
    const good = file(PNG_HEAD, 1500, 2);
    await attach(db, bad, { now: 10 });
    await attach(db, good, { now: 20 });
    const server = new FakeUploads();
    server.refuse.add(sha(bad));
    vi.stubGlobal('fetch', server.fetch);
    expect(await runUploads(db)).toMatchObject({ completed: 1, refused: 1 });
    expect(await row(db, bad)).toMatchObject({ state: 'refused', message: '服务器拒收此照片，请移除后重新拍摄（服务器说明：the image cannot be decoded）' });
    expect(await row(db, good)).toMatchObject({ state: 'complete' });
    // The refused file keeps its bytes (nothing is dropped before the server has it).
    expect((await db.photos.get(sha(bad)))?.bytes?.byteLength).toBe(1500);
    // And it is not tried again.
    server.log = [];
    await runUploads(db);
    expect(server.log).toEqual(['GET /uploads/limits']);
  });

  it('a finish that finds parts missing (hash_mismatch) starts a new upload once, then refuses', async () => {
    const db = freshDb();
    await phone(db);
    const bytes = file(JPEG_HEAD, 1500, 5);
    await attach(db, bytes);
    const server = new FakeUploads();
    vi.stubGlobal('fetch', server.fetch);
    let lose = 1;
    const real = server.fetch;
    vi.stubGlobal('fetch', async (input: string, init?: RequestInit) => {
      if (String(input).endsWith('/finish') && lose > 0) {
        lose--;
        for (const u of server.uploads.values()) u.parts = [new Uint8Array(u.size)];
      }
      return real(input, init);
    });
    expect(await runUploads(db)).toMatchObject({ completed: 1 });
    expect(server.log.filter((l) => l === 'POST /uploads')).toHaveLength(2);
    expect(server.stored.get(sha(bytes))).toEqual(bytes);

    const broken = file(JPEG_HEAD, 900, 6);
    await attach(db, broken);
    vi.stubGlobal('fetch', async (input: string, init?: RequestInit) => {
      if (String(input).endsWith('/finish')) {
        for (const u of server.uploads.values()) if (!u.done) u.parts = [new Uint8Array(u.size)];
      }
      return real(input, init);
    });
    expect(await runUploads(db)).toMatchObject({ refused: 1 });
    expect((await row(db, broken))?.message).toContain('文件校验不一致');
  });

  it('a too-large answer (413) is a refusal too; other failures back off and are retried', async () => {
    const db = freshDb();
    await phone(db);
    const big = file(JPEG_HEAD, 2000, 3);
    await attach(db, big);
    const server = new FakeUploads();
    vi.stubGlobal('fetch', server.fetch);
    server.limits.file_max_bytes = 1000; // lowered on the server after the photo was taken
    expect(await runUploads(db)).toMatchObject({ refused: 1 });
    expect((await row(db, big))?.message).toContain('文件超过服务器允许的大小');

    const other = file(JPEG_HEAD, 500, 4);
    await attach(db, other);
    server.limits.file_max_bytes = 30_000_000;
    const failing = server.fetch;
    vi.stubGlobal('fetch', async (input: string, init?: RequestInit) =>
      String(input).endsWith('/uploads') ? new Response(JSON.stringify({ error: { code: 'forbidden', message: 'no' } }), { status: 403 }) : failing(input, init),
    );
    let now = 1_000_000;
    expect(await runUploads(db, { now: () => now })).toMatchObject({ failed: 1 });
    expect(await row(db, other)).toMatchObject({ state: 'pending', attempts: 1, nextAt: now + backoffMs(1) });
    vi.stubGlobal('fetch', server.fetch);
    expect(await runUploads(db, { now: () => now })).toMatchObject({ completed: 0 }); // still backing off
    now += backoffMs(1);
    expect(await runUploads(db, { now: () => now })).toMatchObject({ completed: 1 });
    expect(backoffMs(30)).toBe(30 * 60_000);
  });

  it('keeps the upload id and offset across a reopened database (an app reload)', async () => {
    const name = `upload-reopen-${++n}`;
    let db = freshDb(name);
    await phone(db);
    const bytes = file(JPEG_HEAD, 3000);
    await attach(db, bytes);
    const server = new FakeUploads();
    vi.stubGlobal('fetch', server.fetch);
    server.dropNext = (method, path) => method === 'POST' && path.endsWith('/finish');
    expect(await runUploads(db)).toMatchObject({ offline: true });
    db.close();
    db = freshDb(name);
    const r = await row(db, bytes);
    expect(r).toMatchObject({ state: 'pending', offset: 3000 });
    expect(r?.uploadId).toMatch(/^00000000-0000-7000/);
    server.log = [];
    expect(await runUploads(db)).toMatchObject({ completed: 1 });
    expect(server.log).toEqual(['GET /uploads/limits', `POST /uploads/${r?.uploadId}/finish`]);
  });

  it('the rescue file lists the photos not yet uploaded', async () => {
    const db = freshDb();
    await phone(db);
    const bytes = file(JPEG_HEAD, 800);
    await attach(db, bytes);
    const rescue = await buildRescueFile(db, 'linye', new Date(0));
    expect(rescue.photos_not_uploaded).toEqual([
      expect.objectContaining({ record: RECORD, sha256: sha(bytes), size: 800, state: 'pending' }),
    ]);
    expect(await queuedOps(db, 10)).toHaveLength(1);
  });
});

describe('schema migration', () => {
  it('a version 2 database opens as the current version with its data and empty photo and strokes tables', async () => {
    const name = `migrate-photos-${++n}`;
    const v2 = new Dexie(name);
    v2.version(1).stores({
      meta: '&key',
      entities: '&id',
      outbox: '&seq, entity',
      rejections: '&id, entity',
      mines: '&id, townshipId',
      rounds: '&id, mineId',
      templates: '&ref',
      org: '&key',
    });
    v2.version(2).stores({ entities: '&id, mineId', views: '&id' });
    const state = { id: RECORD, entity_type: 'acceptance_record', created_by: 'c', tombstoned: false, fields: {}, sets: {}, signatures: {} } satisfies EntityState;
    await v2.table('entities').put({ id: RECORD, mineId: 'mine-1', state });
    await v2.table('meta').put({ key: 'replica', value: { deviceId: A, nextSeq: 7, cursor: 3, clock: { last: { wall_ms: 1, counter: 0 } } } });
    v2.close();
    const db = freshDb(name);
    await db.open();
    expect(db.verno).toBe(4);
    expect((await db.entities.get(RECORD))?.state.id).toBe(RECORD);
    expect((await loadMeta(db, A)).nextSeq).toBe(7);
    expect(await db.photos.count()).toBe(0);
    expect(await db.uploads.where('state').equals('pending').count()).toBe(0);
    expect(await db.strokes.count()).toBe(0);
    expect(DB_NAME).toBe('yanshou');
  });
});

describe('the server findings in words', () => {
  it('says where and when, for the file and for the phone, and warns when the fixes disagree', () => {
    const f = readFindings({
      sha256: 'a'.repeat(64),
      status: 'received',
      location: { exif: { verdict: 'near', metres: '12.3' }, phone: { verdict: 'inside', metres: null } },
      time: { exif: { verdict: 'same_day', days: 0 }, phone: { verdict: 'within_days', days: -2 } },
      positions: { metres: '35.2', allowed_m: '10.0', disagree: true },
      exif: { warnings: [{ field: 'GPSLatitude', problem: 'out of range' }] },
    });
    expect(f?.tone).toEqual({ exifLocation: 'warn', phoneLocation: 'ok', exifTime: 'ok', phoneTime: 'warn' });
    expect(f).toMatchObject({
      status: 'received',
      location: { exif: '范围外附近 12 米', phone: '在矿区范围内' },
      time: { exif: '当天', phone: '相差 2 天（验收日前）' },
      disagree: '照片记录的位置与手机定位相差 35 米（允许 10 米），请核实',
      warnings: ['GPSLatitude out of range'],
    });
  });

  it('before the upload only the phone is judged; unknowns say so', () => {
    const f = readFindings({
      status: 'awaiting_upload',
      location: { exif: { verdict: 'unknown', metres: null }, phone: { verdict: 'outside', metres: '1520.4' } },
      time: { exif: { verdict: 'unknown', days: null }, phone: { verdict: 'unknown', days: null } },
      positions: null,
      exif: null,
    });
    expect(f?.location).toEqual({ exif: '上传后判定', phone: '范围外 1520 米' });
    expect(f?.time).toEqual({ exif: '上传后判定', phone: '未知' });
    expect(f?.disagree).toBeNull();
    expect(locationText({ verdict: 'unknown', metres: null })).toBe('位置未知');
    expect(timeText({ verdict: 'outside', days: 9 })).toBe('相差 9 天（验收日后），超出允许范围');
    expect(readFindings(null)).toBeNull();
  });
});

describe('the sync loop and the queue', () => {
  it('pushes the op that names a photo first, then uploads it, then syncs again for the findings', async () => {
    const db = freshDb();
    const sync = new TestServer();
    await phone(db, sync);
    const bytes = file(JPEG_HEAD, 2500, 9);
    await attach(db, bytes);
    expect(status.pendingUploads).toBe(0); // counted by the loop, not yet run
    const uploads = new FakeUploads();
    const order: string[] = [];
    let syncs = 0;
    vi.stubGlobal('fetch', async (input: string, init: RequestInit = {}) => {
      const path = String(input).slice(String(input).indexOf('/api/v1') + 7);
      if (path === '/sync') {
        syncs++;
        const body = String(init.body);
        const pushed = (JSON.parse(body) as SyncRequest).ops.map((o) => `${o.kind} ${'field' in o ? o.field : ''}`);
        order.push(`sync [${pushed.join(', ')}]`);
        return new Response(sync.handleText(body, A), { status: 200 });
      }
      if (path === '/mines' || path === '/departments' || path === '/townships') return new Response('[]');
      if (path === '/uploads' && init.method === 'POST') order.push('create upload');
      return uploads.fetch(input, init);
    });
    await syncNow(db);
    await until(() => syncs >= 2 && !status.uploading && status.phase !== 'syncing');
    const seen = [...order];
    await syncNow(db); // lets nothing of the loop outlive the test
    expect(seen[0]).toBe(`sync [add ${FIELD}]`);
    expect(seen.indexOf('create upload')).toBeGreaterThan(0);
    expect(seen.at(-1)).toBe('sync []');
    expect(uploads.stored.get(sha(bytes))).toEqual(bytes);
    expect(status.pendingUploads).toBe(0);
    expect(await db.outbox.count()).toBe(0);
  });
});

async function until(f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
