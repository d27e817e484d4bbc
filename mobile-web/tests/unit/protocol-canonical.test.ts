import { describe, expect, it } from 'vitest';

import {
  canonical,
  compareHlc,
  contentHash,
  decodeEntityState,
  JsonSyntaxError,
  newClock,
  observe,
  parseJsonValue,
  sectionDocument,
  sectionHash,
  tick,
  validateValue,
  ValueError,
  valueFromTree,
  MAX_DRIFT_MS,
  type Clock,
} from '../../src/protocol';
import { asList, asStr, fixture, get } from './protocolFixtures';

const file = fixture('canonical.json');

describe('canonical.json fixture (pinned; a change is a protocol break)', () => {
  const values = asList(get(file, 'values'));
  it('has the cases', () => expect(values.length).toBe(11));
  for (const c of values) {
    const name = asStr(get(c, 'name'));
    it(`value: ${name}`, () => {
      const value = valueFromTree(get(c, 'value') ?? null);
      expect(canonical(value)).toBe(asStr(get(c, 'canonical')));
      expect(contentHash(value)).toBe(asStr(get(c, 'sha256')));
    });
  }

  const invalid = asList(get(file, 'invalid'));
  it('has the invalid cases', () => expect(invalid.length).toBe(5));
  for (const c of invalid) {
    const name = asStr(get(c, 'name'));
    it(`invalid: ${name}`, () => {
      let error: unknown = null;
      try {
        parseJsonValue(asStr(get(c, 'json')));
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ValueError);
      expect(error instanceof ValueError ? error.kind : null).toBe(asStr(get(c, 'error')));
    });
  }

  const sections = asList(get(file, 'sections'));
  it('has the section cases', () => expect(sections.length).toBe(3));
  for (const c of sections) {
    const name = asStr(get(c, 'name'));
    it(`section: ${name}`, () => {
      const state = decodeEntityState(get(c, 'state'));
      const section = asStr(get(c, 'section'));
      const document = get(c, 'document');
      if (document === undefined) {
        expect(asStr(get(c, 'error'))).toBe('conflicted');
        expect(sectionDocument(state, section)).toBeNull();
        expect(sectionHash(state, section)).toBeNull();
      } else {
        const doc = sectionDocument(state, section);
        expect(doc === null ? null : canonical(doc)).toBe(asStr(document));
        expect(sectionHash(state, section)).toBe(asStr(get(c, 'sha256')));
      }
    });
  }
});

describe('values as the Rust side reads them', () => {
  it.each([
    ['-0', 'float'],
    ['-1.5e2', 'float'],
    ['18446744073709551615', 'int_out_of_range'],
    ['18446744073709551616', 'float'],
    ['-9223372036854775808', 'int_out_of_range'],
    ['-9223372036854775809', 'float'],
    ['[1, {"a": 2.0}]', 'float'],
  ])('%s is refused as %s', (json, kind) => {
    expect(() => parseJsonValue(json)).toThrow(ValueError);
    try {
      parseJsonValue(json);
    } catch (e) {
      expect(e instanceof ValueError && e.kind).toBe(kind);
    }
  });

  it('keeps safe integers and the rest of JSON', () => {
    expect(parseJsonValue('{"b": [9007199254740991, -9007199254740991, 0], "a": "x\\u00e9\\ud83d\\ude00"}')).toEqual({
      b: [9007199254740991, -9007199254740991, 0],
      a: 'xé😀',
    });
  });

  it('refuses text that is not JSON, including lone surrogates', () => {
    for (const bad of ['', '{', '[1,]', '01', '"\\ud800"', '"a\nb"', 'nul', '1 2', '{"a" 1}']) {
      expect(() => parseJsonValue(bad), bad).toThrow(JsonSyntaxError);
    }
  });

  it('refuses floats and unsafe integers built in code', () => {
    expect(() => validateValue({ a: [85.5] })).toThrow(/send decimals as strings/);
    expect(() => validateValue(2 ** 60)).toThrow(/outside/);
    expect(() => validateValue(Number.NaN)).toThrow(ValueError);
    expect(() => canonical('\ud800')).toThrow(ValueError);
  });

  it('keeps "__proto__" and "constructor" as ordinary keys', () => {
    const v = parseJsonValue('{"__proto__": 1, "constructor": 2}');
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(canonical(v)).toBe('{"__proto__":1,"constructor":2}');
  });

  it('sorts keys by UTF-16 code units', () => {
    expect(canonical({ '\uff61': 1, '\u{1F600}': 2, b: 3, a: { d: 1, c: null } })).toBe(
      '{"a":{"c":null,"d":1},"b":3,"😀":2,"｡":1}',
    );
  });
});

describe('hybrid logical clock', () => {
  const at = (c: Clock): [number, number] => [c.last.wall_ms, c.last.counter];

  it('ticks strictly increasing even when wall time goes backwards', () => {
    const a = tick(newClock(), 1000);
    const b = tick(a, 1000);
    const c = tick(b, 500);
    expect([at(a), at(b), at(c)]).toEqual([
      [1000, 0],
      [1000, 1],
      [1000, 2],
    ]);
    expect(at(tick(c, 2000))).toEqual([2000, 0]);
  });

  it('rolls the counter over into the next millisecond', () => {
    expect(at(tick({ last: { wall_ms: 5, counter: 0xffffffff } }, 1))).toEqual([6, 0]);
  });

  it('orders later ticks after an observed remote', () => {
    const remote = { wall_ms: 60_000, counter: 7 };
    const seen = observe(tick(newClock(), 1000), remote, 1000);
    expect(seen.drift).toBeNull();
    expect(seen.clock.last).toEqual(remote);
    expect(compareHlc(tick(seen.clock, 1001).last, remote)).toBeGreaterThan(0);
  });

  it('adopts a remote beyond the drift bound only up to the bound, and reports it', () => {
    const far = { wall_ms: 1000 + MAX_DRIFT_MS + 1, counter: 0 };
    const seen = observe(newClock(), far, 1000);
    expect(seen.drift?.adopted).toEqual({ wall_ms: 1000 + MAX_DRIFT_MS, counter: 0 });
    expect(seen.clock.last).toEqual({ wall_ms: 1000 + MAX_DRIFT_MS, counter: 0 });
    expect(compareHlc(tick(seen.clock, 1000).last, far)).toBeLessThan(0);
  });
});
