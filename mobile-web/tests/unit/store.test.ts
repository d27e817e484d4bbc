/**
 * The phone's IndexedDB layer (fake-indexeddb): edits become outbox ops atomically with the
 * series, sync responses move them on exactly as PROTOCOL.md §10 says, conflicts keep every
 * value, schema version 1 data survives the upgrade, and nothing unsynced escapes the rescue file.
 */
import 'fake-indexeddb/auto';
import Dexie from 'dexie';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeResponse, type EntityState, type Op, type SyncRequest } from '../../src/protocol';
import { DB_NAME, StorageError, openDb, type YanshouDb } from '../../src/store/db';
import {
  LocalRefusal,
  applyResponse,
  loadMeta,
  loadRecord,
  makeOp,
  queuedOps,
} from '../../src/store/replica';
import { buildRescueFile } from '../../src/store/rescue';
import { TestServer } from './protocolServer';

const RECORD = '00000000-0000-0000-0000-0000000000e1';
const SERVER_DEVICE = '00000000-0000-0000-0000-000000000000';
const A = '00000000-0000-0000-0000-00000000000a';
const B = '00000000-0000-0000-0000-00000000000b';

let n = 0;
let dbs: YanshouDb[] = [];

function freshDb(): YanshouDb {
  const db = openDb(`test-${++n}`);
  dbs.push(db);
  return db;
}

/** The server's own op creating a record, as the real server does when a round opens. */
function createRecord(server: TestServer, fields: Record<string, string | number>): void {
  server.sync({
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
        fields,
      },
    ],
    cursor: 0,
    pull_limit: null,
  });
}

/** A server holding one record. */
function serverWithRecord(): TestServer {
  const server = new TestServer();
  createRecord(server, { mine_id: 'mine-1', mine_name: '黄家山采石场', round_no: 1 });
  return server;
}

/** One sync round trip of the phone against the test server, through the store. */
async function sync(db: YanshouDb, device: string, server: TestServer, now = 5000): Promise<void> {
  const meta = await loadMeta(db, device);
  const ops = await queuedOps(db, 500);
  const req: SyncRequest = { protocol_version: 1, device, ops, cursor: meta.cursor, pull_limit: null };
  const res = decodeResponse(server.handleText(JSON.stringify(req), device));
  await applyResponse(db, device, ops, res, now);
}

beforeEach(() => {
  dbs = [];
});
afterEach(async () => {
  for (const db of dbs) {
    db.close();
    await Dexie.delete(db.name);
  }
});

describe('edits and the outbox', () => {
  it('an edit is an outbox op with the next seq and the confirmed revision as base', async () => {
    const db = freshDb();
    const server = serverWithRecord();
    await sync(db, A, server);
    const op = await makeOp(db, A, RECORD, { kind: 'set', field: 'water_resources/14.result', value: 'pass' }, 6000);
    expect(op).toMatchObject({ seq: 1, kind: 'set', base_rev: 0, device: A });
    const op2 = await makeOp(db, A, RECORD, { kind: 'set', field: 'water_resources/14.result', value: 'fail' }, 6001);
    expect(op2).toMatchObject({ seq: 2, base_rev: 0 });
    const r = await loadRecord(db, RECORD);
    expect(r.pending.map((p) => p.seq)).toEqual([1, 2]);
    expect(r.view?.fields['water_resources/14.result']?.value).toBe('fail');
    expect(r.confirmed?.fields['water_resources/14.result']).toBeUndefined();
    expect((await loadMeta(db, A)).nextSeq).toBe(3);
  });

  it('refuses an edit of a record the phone does not have, using no seq', async () => {
    const db = freshDb();
    await expect(
      makeOp(db, A, RECORD, { kind: 'set', field: 'water_resources/14.result', value: 'pass' }),
    ).rejects.toBeInstanceOf(LocalRefusal);
    expect(await db.outbox.count()).toBe(0);
    expect((await loadMeta(db, A)).nextSeq).toBe(1);
  });

  it('an acknowledged op leaves the outbox once pulled, and the value is confirmed', async () => {
    const db = freshDb();
    const server = serverWithRecord();
    await sync(db, A, server);
    await makeOp(db, A, RECORD, { kind: 'set', field: 'water_resources/14.result', value: 'pass' });
    await sync(db, A, server);
    expect(await db.outbox.count()).toBe(0);
    const r = await loadRecord(db, RECORD);
    expect(r.confirmed?.fields['water_resources/14.result']).toMatchObject({ value: 'pass', rev: 1 });
    expect(server.entities[RECORD]?.fields['water_resources/14.result']?.value).toBe('pass');
  });

  it('a lost response is harmless: the resent op is a duplicate and nothing doubles', async () => {
    const db = freshDb();
    const server = serverWithRecord();
    await sync(db, A, server);
    await makeOp(db, A, RECORD, { kind: 'set', field: 'water_resources/14.result', value: 'pass' });
    const ops = await queuedOps(db, 500);
    // The server applies the push, but the response never arrives.
    server.handleText(
      JSON.stringify({ protocol_version: 1, device: A, ops, cursor: 0, pull_limit: null }),
      A,
    );
    expect(await db.outbox.count()).toBe(1);
    await sync(db, A, server);
    expect(await db.outbox.count()).toBe(0);
    expect(server.feed.filter((c) => c.kind === 'field')).toHaveLength(1);
    expect((await loadRecord(db, RECORD)).confirmed?.fields['water_resources/14.result']?.value).toBe('pass');
  });

  it('two inspectors editing one field offline both keep their value in a conflict; a resolve settles it', async () => {
    const server = serverWithRecord();
    const a = freshDb();
    const b = freshDb();
    await sync(a, A, server);
    await sync(b, B, server);
    await makeOp(a, A, RECORD, { kind: 'set', field: 'water_resources/14.length', value: '120' }, 7000);
    await makeOp(b, B, RECORD, { kind: 'set', field: 'water_resources/14.length', value: '118' }, 7001);
    await sync(a, A, server);
    await sync(b, B, server);
    await sync(a, A, server);
    for (const db of [a, b]) {
      const f = (await loadRecord(db, RECORD)).confirmed?.fields['water_resources/14.length'];
      expect(f?.conflict?.candidates.map((c) => c.value).sort()).toEqual(['118', '120']);
    }
    // A set on a confirmed conflict is refused locally: the person must choose.
    await expect(
      makeOp(a, A, RECORD, { kind: 'set', field: 'water_resources/14.length', value: '119' }),
    ).rejects.toMatchObject({ code: 'conflict_unresolved' });
    const conflict = (await loadRecord(a, RECORD)).confirmed?.fields['water_resources/14.length']?.conflict;
    const chosen = conflict?.candidates.find((c) => c.value === '118');
    expect(chosen).toBeDefined();
    await makeOp(a, A, RECORD, {
      kind: 'resolve',
      field: 'water_resources/14.length',
      value: '118',
      chosen_op: chosen?.op ?? null,
      reason: '现场复核',
    });
    await sync(a, A, server);
    await sync(b, B, server);
    for (const db of [a, b]) {
      const f = (await loadRecord(db, RECORD)).confirmed?.fields['water_resources/14.length'];
      expect(f?.conflict).toBeNull();
      expect(f?.value).toBe('118');
      expect(f?.resolution?.candidates).toHaveLength(2);
    }
  });

  it('a rejected op moves to rejections with the reason, never silently dropped', async () => {
    const server = new TestServer((_type, op: Op) =>
      'field' in op && op.field.startsWith('forestry/')
        ? { code: 'forbidden', message: 'a water inspector may not change the forestry section' }
        : null,
    );
    createRecord(server, {});
    const db = freshDb();
    await sync(db, A, server);
    await makeOp(db, A, RECORD, { kind: 'set', field: 'forestry/20.result', value: 'pass' });
    await sync(db, A, server);
    expect(await db.outbox.count()).toBe(0);
    const rej = await db.rejections.toArray();
    expect(rej).toHaveLength(1);
    expect(rej[0]).toMatchObject({ code: 'forbidden', entity: RECORD });
    expect(rej[0]?.message).toContain('forestry');
  });

  it('a phone offline for a week with 1,000 edits syncs them all in order', { timeout: 60_000 }, async () => {
    const db = freshDb();
    const server = serverWithRecord();
    await sync(db, A, server);
    const week = 7 * 24 * 3600 * 1000;
    for (let i = 0; i < 1000; i++) {
      await makeOp(db, A, RECORD, { kind: 'set', field: `water_resources/${(i % 30) + 1}.result`, value: i % 2 ? 'pass' : 'fail' }, 10_000 + (i * week) / 1000);
    }
    expect(await db.outbox.count()).toBe(1000);
    for (let round = 0; round < 5 && (await db.outbox.count()) > 0; round++) {
      await sync(db, A, server, 10_000 + week);
    }
    expect(await db.outbox.count()).toBe(0);
    const r = await loadRecord(db, RECORD);
    // Item 1 was last written by edit 990 (even → fail); item 30 by edit 999 (odd → pass).
    expect(r.confirmed?.fields['water_resources/1.result']?.value).toBe('fail');
    expect(r.confirmed?.fields['water_resources/30.result']?.value).toBe('pass');
    expect(Object.values(r.confirmed?.fields ?? {}).every((f) => f.conflict === null)).toBe(true);
  });
});

describe('schema migrations', () => {
  it('records stored by version 1 are indexed by mine after the upgrade', async () => {
    const name = `migrate-${++n}`;
    const v1 = new Dexie(name);
    v1.version(1).stores({
      meta: '&key',
      entities: '&id',
      outbox: '&seq, entity',
      rejections: '&id, entity',
      mines: '&id, townshipId',
      rounds: '&id, mineId',
      templates: '&ref',
      org: '&key',
    });
    const state: EntityState = {
      id: RECORD,
      entity_type: 'acceptance_record',
      created_by: '00000000-0000-0000-0000-0000000000c1',
      tombstoned: false,
      fields: {
        mine_id: {
          value: 'mine-7',
          rev: 1,
          last_writer: SERVER_DEVICE,
          op: '00000000-0000-0000-0000-0000000000c1',
          hlc: { wall_ms: 1, counter: 0 },
          streak_base: 0,
          conflict: null,
          resolution: null,
        },
      },
      sets: {},
      signatures: {},
    };
    await v1.table('entities').put({ id: RECORD, state });
    await v1.table('outbox').put({ seq: 1, entity: RECORD, op: { id: 'x' }, ackedAt: null, madeAt: 1 });
    v1.close();

    const db = openDb(name);
    dbs.push(db);
    const rows = await db.entities.where('mineId').equals('mine-7').toArray();
    expect(rows.map((r) => r.id)).toEqual([RECORD]);
    expect(await db.outbox.count()).toBe(1);
    expect(db.verno).toBe(4);
  });
});

describe('rescue file and storage errors', () => {
  it('the rescue file holds every unsynced op and every rejection', async () => {
    const db = freshDb();
    const server = serverWithRecord();
    await sync(db, A, server);
    await makeOp(db, A, RECORD, { kind: 'set', field: 'water_resources/14.result', value: 'pass' });
    await makeOp(db, A, RECORD, { kind: 'set', field: 'water_resources/15.count', value: '3' });
    await db.rejections.put({
      id: 'r1',
      entity: RECORD,
      op: (await queuedOps(db, 1))[0] as Op,
      code: 'forbidden',
      message: 'no',
      at: 1,
    });
    const file = await buildRescueFile(db, 'insp.water_resources', new Date('2026-11-30T00:00:00Z'));
    expect(file.ops).toHaveLength(2);
    expect(file.rejections).toHaveLength(1);
    expect(JSON.stringify(file)).toContain('water_resources/15.count');
  });

  it('a full disk is reported as such', () => {
    const quota = new DOMException('full', 'QuotaExceededError');
    const e = StorageError.from(quota);
    expect(e.quota).toBe(true);
    expect(e.message).toContain('存储空间已满');
    expect(StorageError.from(new Error('boom')).quota).toBe(false);
  });
});

it('uses the app database name by default', () => {
  expect(DB_NAME).toBe('yanshou');
});
