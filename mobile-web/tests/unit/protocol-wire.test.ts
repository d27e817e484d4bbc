import { describe, expect, it } from 'vitest';

import { decodeRequest, decodeResponse, ProtocolError } from '../../src/protocol';
import { fixtureText } from './protocolFixtures';

function errorOf(f: () => unknown): ProtocolError | null {
  try {
    f();
  } catch (e) {
    if (e instanceof ProtocolError) return e;
    throw e;
  }
  return null;
}

describe('wire fixtures (pinned; a change is a protocol break)', () => {
  it('sync_request.json decodes and re-encodes byte for byte', () => {
    const text = fixtureText('sync_request.json');
    const request = decodeRequest(text);
    expect(JSON.stringify(request, null, 2) + '\n').toBe(text);
    expect(request.ops.map((op) => op.kind)).toEqual(['create', 'set', 'set', 'add', 'remove', 'resolve', 'sign', 'tombstone']);
    expect(request.ops[2]).toMatchObject({ kind: 'set', value: { basins: 3, depth_m: '1.25' }, base_rev: 0 });
    expect(request.ops[5]).toMatchObject({ chosen_op: '00000000-0000-0000-0000-0000000000b2', reason: '复核：补植已完成' });
    expect([request.cursor, request.pull_limit]).toEqual([41, 100]);
  });

  it('sync_response.json decodes and re-encodes byte for byte', () => {
    const text = fixtureText('sync_response.json');
    const response = decodeResponse(text);
    expect(JSON.stringify(response, null, 2) + '\n').toBe(text);
    expect(response.results.map((r) => r.status)).toEqual(['duplicate', 'applied', 'conflict', 'rejected', 'gap']);
    expect(response.changes.map((c) => [c.commit_seq, c.kind])).toEqual([
      [42, 'created'],
      [43, 'field'],
      [44, 'set_field'],
      [45, 'signed'],
      [46, 'tombstoned'],
    ]);
    expect([response.cursor, response.has_more]).toEqual([46, true]);
  });

  it('normalises map key order and UUID spelling as the Rust side prints them', () => {
    const text =
      '{"pull_limit":null,"cursor":0,"ops":[{"kind":"set","base_rev":0,"value":{"b":1,"a":2},"field":"s/f",' +
      '"entity":"{00000000-0000-0000-0000-00000000000E}","hlc":{"counter":0,"wall_ms":1},"seq":1,' +
      '"device":"0000000000000000000000000000000A","id":"urn:uuid:00000000-0000-0000-0000-000000000001"}],' +
      '"device":"00000000-0000-0000-0000-00000000000a","protocol_version":1}';
    expect(JSON.stringify(decodeRequest(text))).toBe(
      '{"protocol_version":1,"device":"00000000-0000-0000-0000-00000000000a","ops":[{"id":"00000000-0000-0000-0000-000000000001",' +
        '"device":"00000000-0000-0000-0000-00000000000a","seq":1,"hlc":{"wall_ms":1,"counter":0},' +
        '"entity":"00000000-0000-0000-0000-00000000000e","kind":"set","field":"s/f","value":{"a":2,"b":1},"base_rev":0}],' +
        '"cursor":0,"pull_limit":null}',
    );
  });
});

describe('decoding checks the version before the shape', () => {
  it('another version is unsupported, whatever follows', () => {
    const e = errorOf(() => decodeResponse('{"protocol_version":2,"whatever":true,"x":1.5}'));
    expect([e?.kind, e?.got]).toEqual(['unsupported_version', 2]);
  });

  it.each([
    ['{}', /protocol_version/],
    ['not json', /malformed/],
    ['{"protocol_version":1.0,"results":[],"changes":[],"cursor":0,"has_more":false}', /protocol_version/],
    ['{"protocol_version":1,"results":[],"changes":[],"cursor":1.0,"has_more":false}', /cursor/],
    ['{"protocol_version":1,"results":[],"changes":[],"cursor":-1,"has_more":false}', /cursor/],
    ['{"protocol_version":1,"results":[{"status":"gone","op":"00000000-0000-0000-0000-000000000001"}],"changes":[],"cursor":0,"has_more":false}', /unknown variant/],
    ['{"protocol_version":1,"results":[{"status":"rejected","op":"00000000-0000-0000-0000-000000000001","code":"nope","message":""}],"changes":[],"cursor":0,"has_more":false}', /unknown variant/],
  ])('%s is malformed', (text, message) => {
    const e = errorOf(() => decodeResponse(text));
    expect(e?.kind).toBe('malformed');
    expect(e?.message).toMatch(message);
  });

  it('a float inside a value makes the message malformed', () => {
    const text = fixtureText('sync_request.json').replace('"basins": 3', '"basins": 3.0');
    const e = errorOf(() => decodeRequest(text));
    expect(e?.kind).toBe('malformed');
    expect(e?.message).toMatch(/ops\[2\]\.value: floating-point number 3\.0/);
  });
});
