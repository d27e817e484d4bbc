/**
 * A tiny in-memory authority for tests, built from `merge`: the batch processor of PROTOCOL.md §7
 * (series, duplicates with stored results, seq reuse, gaps that hold the rest of the batch) and
 * the pull of §8. Messages go through JSON text both ways, so the wire decoders are exercised too.
 */

import {
  decodeRequest,
  decodeResponse,
  DEFAULT_PULL_LIMIT,
  makeChange,
  MAX_PULL_LIMIT,
  merge,
  PROTOCOL_VERSION,
  type Change,
  type DeviceId,
  type EntityState,
  type OpId,
  type OpResult,
  type Policy,
  type SyncRequest,
  type SyncResponse,
} from '../../src/protocol';

export class TestServer {
  entities: Record<string, EntityState> = {};
  feed: Change[] = [];
  private lastSeq = new Map<DeviceId, number>();
  private storedSeqs = new Map<string, OpId>();
  private storedResults = new Map<OpId, OpResult>();

  constructor(private readonly policy?: Policy) {}

  /** Handles a request as text; `device` is the authenticated device. */
  handleText(text: string, device: DeviceId): string {
    return JSON.stringify(this.handle(decodeRequest(text), device));
  }

  /** Round trip through JSON text, as a real client does. */
  sync(request: SyncRequest): SyncResponse {
    return decodeResponse(this.handleText(JSON.stringify(request), request.device));
  }

  handle(request: SyncRequest, device: DeviceId): SyncResponse {
    const results: OpResult[] = [];
    let heldFrom: number | null = null;
    for (const op of request.ops) {
      if (op.device !== device) {
        results.push({ status: 'rejected', op: op.id, code: 'wrong_device', message: `op ${op.id} belongs to another device` });
        continue;
      }
      if (heldFrom !== null) {
        results.push({ status: 'gap', op: op.id, expected: heldFrom });
        continue;
      }
      const last = this.lastSeq.get(device) ?? 0;
      if (op.seq <= last) {
        const stored = this.storedSeqs.get(`${device}/${op.seq}`);
        if (stored !== undefined && stored !== op.id) {
          results.push({ status: 'rejected', op: op.id, code: 'seq_reused', message: `seq ${op.seq} reused` });
        } else {
          const prior = this.storedResults.get(op.id);
          results.push(prior?.status === 'rejected' ? prior : { status: 'duplicate', op: op.id });
        }
        continue;
      }
      if (op.seq > last + 1) {
        heldFrom = last + 1;
        results.push({ status: 'gap', op: op.id, expected: heldFrom });
        continue;
      }
      this.lastSeq.set(device, op.seq);
      this.storedSeqs.set(`${device}/${op.seq}`, op.id);
      const commitSeq = this.feed.length + 1;
      const r = merge(this.entities[op.entity] ?? null, op, { policy: this.policy, commitSeq });
      let result: OpResult;
      if (r.outcome === 'applied' || r.outcome === 'conflict') {
        this.entities[op.entity] = r.state;
        this.feed.push(makeChange(op, r.state.entity_type, commitSeq, r.change));
        result = { status: r.outcome, op: op.id, commit_seq: commitSeq };
      } else if (r.outcome === 'rejected') {
        result = { status: 'rejected', op: op.id, code: r.code, message: r.message };
      } else {
        result = { status: 'duplicate', op: op.id };
      }
      if (result.status !== 'duplicate') this.storedResults.set(op.id, result);
      results.push(result);
    }
    const limit = Math.max(1, Math.min(request.pull_limit ?? DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT));
    const rest = this.feed.filter((c) => c.commit_seq > request.cursor);
    const changes = rest.slice(0, limit);
    return {
      protocol_version: PROTOCOL_VERSION,
      results,
      changes,
      cursor: changes[changes.length - 1]?.commit_seq ?? request.cursor,
      has_more: rest.length > limit,
    };
  }
}
