import { describe, expect, it } from 'vitest';

import {
  canonical,
  decodeChangeBody,
  decodeOp,
  merge,
  opSection,
  parseJsonTree,
  valueFromTree,
  type EntityState,
  type Policy,
} from '../../src/protocol';
import { asList, asStr, fixture, get } from './protocolFixtures';

/** The fixtures' policy: ops touching `forbidden_sections` are refused (tests/common/mod.rs). */
function sectionPolicy(forbidden: string[]): Policy {
  return (_entityType, op) => {
    const s = opSection(op);
    return s !== null && forbidden.includes(s)
      ? { code: 'forbidden', message: `this inspector may not change section ${JSON.stringify(s)}` }
      : null;
  };
}

/** Canonical text of any JSON data, to compare snapshots independently of key order. */
function canonicalOf(data: unknown): string {
  return canonical(valueFromTree(parseJsonTree(JSON.stringify(data))));
}

const cases = asList(get(fixture('merge_cases.json'), 'cases'));

describe('merge_cases.json fixture (pinned; a change is a protocol break)', () => {
  it('has every case', () => expect(cases.length).toBe(39));

  for (const c of cases) {
    const name = asStr(get(c, 'name'));
    it(name, () => {
      const policyTree = get(c, 'policy');
      const policy =
        policyTree === null || policyTree === undefined
          ? undefined
          : sectionPolicy(asList(get(policyTree, 'forbidden_sections')).map(asStr));
      let state: EntityState | null = null;
      const given = asList(get(c, 'given')).map((g) => decodeOp(g));
      given.forEach((op, i) => {
        const r = merge(state, op, { commitSeq: i + 1 });
        if (r.outcome !== 'applied' && r.outcome !== 'conflict') {
          throw new Error(`given op ${op.id} not accepted: ${r.outcome}`);
        }
        state = r.state;
      });
      const before: EntityState | null = state;
      const snapshot = before === null ? null : canonicalOf(before);
      const op = decodeOp(get(c, 'op'));
      const result = merge(before, op, { policy, commitSeq: given.length + 1 });

      const expected = get(c, 'expect');
      expect(result.outcome).toBe(asStr(get(expected, 'outcome')));
      expect(result.outcome === 'rejected' ? result.code : null).toBe(get(expected, 'code'));
      const change = get(expected, 'change');
      if (change === null || change === undefined) {
        expect(result.change).toBeNull();
        expect(result.state).toBe(before);
      } else {
        expect(result.change).toEqual(decodeChangeBody(change));
        expect(canonicalOf(result.change)).toBe(canonical(valueFromTree(change)));
      }
      // The input state is never modified.
      expect(before === null ? null : canonicalOf(before)).toBe(snapshot);
    });
  }
});
