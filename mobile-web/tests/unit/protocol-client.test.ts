import { describe, expect, it } from 'vitest';

import {
  add,
  buildRequest,
  canonical,
  ClientError,
  create,
  handleResponse,
  newReplica,
  remove,
  resolve,
  set,
  sign,
  view,
  viewEntity,
  type EntityState,
  type Made,
  type ReplicaData,
  type Stamp,
  type SyncReport,
  type SyncResponse,
  type Value,
} from '../../src/protocol';
import { TestServer } from './protocolServer';

const A = '00000000-0000-0000-0000-00000000000a';
const B = '00000000-0000-0000-0000-00000000000b';
const E = '00000000-0000-0000-0000-00000000000e';
const F = 'water_resources/item14.result';

/** Deterministic op ids: 00000000-0000-0000-0000-<n in hex>. */
function ids(start: number): () => string {
  let n = start;
  return () => `00000000-0000-0000-0000-${(n++).toString(16).padStart(12, '0')}`;
}

/** A device under test: its replica plus a clock and id source. */
class Device {
  replica: ReplicaData;
  now = 1_000;
  private newId: () => string;
  constructor(device: string, idBase: number) {
    this.replica = newReplica(device);
    this.newId = ids(idBase);
  }
  stamp(): Stamp {
    this.now += 10;
    return { now: this.now, newId: this.newId };
  }
  do(make: (r: ReplicaData, s: Stamp) => Made): Made {
    const made = make(this.replica, this.stamp());
    this.replica = made.replica;
    return made;
  }
  take(response: SyncResponse): SyncReport {
    const { replica, report } = handleResponse(this.replica, response, this.now);
    this.replica = replica;
    return report;
  }
  /** One round trip. */
  sync(server: TestServer, pullLimit: number | null = null): SyncReport {
    return this.take(server.sync(buildRequest(this.replica, pullLimit)));
  }
  value(field: string): Value | undefined {
    return viewEntity(this.replica, E)?.fields[field]?.value;
  }
  confirmed(): EntityState | undefined {
    return this.replica.confirmed[E];
  }
}

/** Syncs every device until nothing is pending and no page is left; capped. */
function syncUntilQuiet(server: TestServer, devices: Device[]): number {
  for (let round = 1; round <= 20; round++) {
    let busy = false;
    for (const d of devices) {
      const report = d.sync(server);
      busy ||= report.hasMore || d.replica.outbox.length > 0 || report.changesApplied > 0;
    }
    if (!busy) return round;
  }
  throw new Error('did not converge in 20 rounds');
}

function expectConverged(server: TestServer, devices: Device[]): void {
  for (const d of devices) {
    expect(canonicalState(d.replica.confirmed)).toBe(canonicalState(server.entities));
    expect(d.replica.cursor).toBe(server.feed.length);
  }
}

function canonicalState(states: Record<string, EntityState>): string {
  return canonical(JSON.parse(JSON.stringify(states)) as Value);
}

function setup(): { server: TestServer; a: Device; b: Device } {
  const server = new TestServer();
  const a = new Device(A, 0x100);
  const b = new Device(B, 0x200);
  a.do((r, s) => create(r, s, E, 'acceptance_table', { [F]: 'pending', mine_name: '某采石场' }));
  syncUntilQuiet(server, [a, b]);
  return { server, a, b };
}

describe('replica: making ops', () => {
  it('stamps seq, hlc and base revision from the confirmed state', () => {
    const { a } = setup();
    const first = a.do((r, s) => set(r, s, E, F, 'pass'));
    const second = a.do((r, s) => set(r, s, E, F, 'fail'));
    expect([first.op.seq, second.op.seq]).toEqual([2, 3]);
    expect([first.op.kind === 'set' && first.op.base_rev, second.op.kind === 'set' && second.op.base_rev]).toEqual([1, 1]);
    expect(second.op.hlc.wall_ms).toBeGreaterThan(first.op.hlc.wall_ms);
    expect(a.value(F)).toBe('fail');
    expect(a.confirmed()?.fields[F]?.value).toBe('pending');
    expect(buildRequest(a.replica, 50)).toMatchObject({ cursor: 1, pull_limit: 50, ops: [{ seq: 2 }, { seq: 3 }] });
  });

  it('refuses locally what the rules reject, without consuming a seq or ticking the clock', () => {
    const { a } = setup();
    const before = a.replica;
    const refused = (f: () => unknown): ClientError | null => {
      try {
        f();
      } catch (e) {
        if (e instanceof ClientError) return e;
        throw e;
      }
      return null;
    };
    expect(refused(() => a.do((r, s) => set(r, s, '00000000-0000-0000-0000-0000000000ff', F, 'x')))?.code).toBe('unknown_entity');
    expect(refused(() => a.do((r, s) => add(r, s, E, F, 'x')))?.code).toBe('field_kind_mismatch');
    expect(refused(() => a.do((r, s) => resolve(r, s, E, F, 'x', null, 'because')))?.code).toBe('no_conflict');
    expect(refused(() => a.do((r, s) => set(r, s, E, F, 1.5)))?.code).toBe('invalid_op');
    expect(a.replica).toBe(before);
    expect(a.replica.nextSeq).toBe(2);
  });

  it('signs the section as the view shows it, pending edits included', () => {
    const { server, a } = setup();
    a.do((r, s) => set(r, s, E, F, 'pass'));
    const signed = a.do((r, s) => sign(r, s, E, 'water_resources', { signer: 'Li Wei' }));
    expect(signed.view.signatures['water_resources']?.content_hash).toMatch(/^[0-9a-f]{64}$/);
    const report = a.sync(server);
    expect([report.acknowledged, report.rejected]).toEqual([2, 0]);
    expect(server.entities[E]?.signatures['water_resources']?.signed_at_commit).toBe(3);
  });
});

describe('convergence', () => {
  it('two devices editing one field offline end in a conflict holding both values, then a resolution', () => {
    const { server, a, b } = setup();
    a.do((r, s) => set(r, s, E, F, 'pass'));
    b.now += 100; // b's edit is later: the provisional winner
    b.do((r, s) => set(r, s, E, F, 'fail: ditch silted'));
    expect(a.sync(server).acknowledged).toBe(1);
    const report = b.sync(server);
    expect(report.conflicts).toBe(1);
    syncUntilQuiet(server, [a, b]);
    expectConverged(server, [a, b]);

    const field = a.confirmed()?.fields[F];
    expect(field?.value).toBe('fail: ditch silted');
    expect(field?.conflict?.candidates.map((c) => [c.device, c.value])).toEqual([
      [A, 'pass'],
      [B, 'fail: ditch silted'],
    ]);
    // A plain set is refused while the confirmed field is conflicted: the person must resolve.
    expect(() => a.do((r, s) => set(r, s, E, F, 'pass'))).toThrow(ClientError);

    const chosen = field?.conflict?.candidates[0]?.op ?? null;
    a.do((r, s) => resolve(r, s, E, F, 'pass', chosen, 're-inspected: ditch cleared'));
    syncUntilQuiet(server, [a, b]);
    expectConverged(server, [a, b]);
    const resolved = b.confirmed()?.fields[F];
    expect([resolved?.value, resolved?.conflict, resolved?.resolution?.chosen_op]).toEqual(['pass', null, chosen]);
    expect(resolved?.resolution?.candidates.length).toBe(2);
  });

  it('lost responses and retries are harmless: nothing applied twice, nothing lost', () => {
    const { server, a, b } = setup();
    a.do((r, s) => set(r, s, E, F, 'pass'));
    a.do((r, s) => add(r, s, E, 'water_resources/item14.photos', 'sha256:aa'));
    const request = buildRequest(a.replica);
    server.sync(request); // response lost
    const retried = server.sync(request);
    expect(retried.results.map((r) => r.status)).toEqual(['duplicate', 'duplicate']);
    a.take(retried);
    a.take(retried); // duplicated response
    expect(a.replica.outbox).toEqual([]);
    syncUntilQuiet(server, [a, b]);
    expectConverged(server, [a, b]);
    expect(server.feed.length).toBe(3);
    expect(b.value(F)).toBe('pass');
  });

  it('a rejection whose response was lost is answered again on retry and kept for the person', () => {
    const { server, a, b } = setup();
    b.do((r, s) => set(r, s, E, F, 'pass'));
    b.do((r, s) => sign(r, s, E, 'water_resources', { signer: 'Li Wei' }));
    a.do((r, s) => set(r, s, E, F, 'fail'));
    b.sync(server);
    const request = buildRequest(a.replica);
    server.sync(request); // response lost
    a.take(server.sync(request));
    expect(a.replica.rejections.map((r) => [r.op.kind, r.code])).toEqual([['set', 'section_signed']]);
    expect(a.replica.outbox).toEqual([]);
    syncUntilQuiet(server, [a, b]);
    expectConverged(server, [a, b]);
    expect(a.value(F)).toBe('pass');
  });

  it('streak rule: a device’s own offline edits never conflict; another device’s concurrent edit does', () => {
    const { server, a, b } = setup();
    for (const v of ['1', '2', '3']) a.do((r, s) => set(r, s, E, F, v));
    expect(a.sync(server)).toMatchObject({ acknowledged: 3, conflicts: 0 });
    b.now += 100; // later than a's edits: b's value is the provisional winner
    b.do((r, s) => set(r, s, E, F, 'b'));
    expect(b.sync(server)).toMatchObject({ acknowledged: 1, conflicts: 1 });
    syncUntilQuiet(server, [a, b]);
    expectConverged(server, [a, b]);
    expect(a.confirmed()?.fields[F]?.conflict?.candidates.map((c) => c.value)).toEqual(['3', 'b']);
  });

  it('a gap holds the rest of the batch until the missing op is resent', () => {
    const { server, a, b } = setup();
    a.do((r, s) => set(r, s, E, F, 'pass'));
    a.do((r, s) => set(r, s, E, F, 'fail'));
    const full = buildRequest(a.replica);
    const skipped = server.sync({ ...full, ops: full.ops.slice(1) });
    expect(skipped.results).toEqual([{ status: 'gap', op: full.ops[1]?.id, expected: 2 }]);
    expect(a.take(skipped).held).toBe(1);
    expect(a.replica.outbox.length).toBe(2);
    syncUntilQuiet(server, [a, b]);
    expectConverged(server, [a, b]);
    expect(b.value(F)).toBe('fail');
  });

  it('add wins over a concurrent remove; pulls page through has_more', () => {
    const { server, a, b } = setup();
    const P = 'water_resources/item14.photos';
    a.do((r, s) => add(r, s, E, P, 'sha256:aa'));
    syncUntilQuiet(server, [a, b]);
    b.do((r, s) => remove(r, s, E, P, 'sha256:aa'));
    a.do((r, s) => add(r, s, E, P, 'sha256:aa'));
    a.do((r, s) => add(r, s, E, P, 'sha256:bb'));
    a.sync(server);
    b.sync(server);
    let pages = 0;
    const c = new Device('00000000-0000-0000-0000-00000000000c', 0x300);
    for (;;) {
      pages++;
      if (!c.sync(server, 2).hasMore) break;
    }
    expect(pages).toBe(3); // 6 changes, 2 per page
    syncUntilQuiet(server, [a, b, c]);
    expectConverged(server, [a, b, c]);
    expect(Object.values(view(c.replica)[E]?.sets[P]?.elements ?? {}).map((e) => e.value)).toEqual(['sha256:aa', 'sha256:bb']);
  });
});
