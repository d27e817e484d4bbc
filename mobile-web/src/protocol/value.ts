/**
 * Field values (PROTOCOL.md §2).
 *
 * A {@link Value} is JSON restricted so that its canonical encoding is identical in Rust and in
 * TypeScript: `null`, booleans, strings, integers within ±(2^53 − 1), lists and maps with string
 * keys. Floats are refused (two implementations may print a float differently, and a signature's
 * hash would then not match); decimals travel as strings (`"85.5"`).
 *
 * Two checks exist because a float can hide in two places:
 * - {@link validateValue} checks a value built in code (`85.5`, `NaN`, `2 ** 60` are refused);
 * - {@link parseJsonValue} checks raw JSON text, where `1.0` must be refused too although
 *   `JSON.parse` would turn it into the integer `1`.
 */

import { JsonNumberError, parseJsonTree, type JsonTree } from './json';
import { getOwn, setOwn } from './record';

/** A field value. */
export type Value = null | boolean | string | number | Value[] | { [key: string]: Value };

/** The largest integer a value may hold: 2^53 − 1. */
export const MAX_SAFE_INTEGER = Number.MAX_SAFE_INTEGER;

/** Why something is not a valid {@link Value}. `kind` matches the fixtures' `error` names. */
export class ValueError extends Error {
  override readonly name = 'ValueError';
  constructor(
    readonly kind: 'float' | 'int_out_of_range' | 'not_a_value',
    /** The offending number or text. */
    readonly detail: string,
  ) {
    super(
      kind === 'float'
        ? `floating-point number ${detail} is not allowed in a field value; send decimals as strings, e.g. "85.5"`
        : kind === 'int_out_of_range'
          ? `integer ${detail} is outside ±(2^53 − 1); send it as a string`
          : `not a field value: ${detail}`,
    );
  }
}

function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
      else return true;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return true;
    }
  }
  return false;
}

/**
 * Throws a {@link ValueError} unless `v` is a valid value: integers only (and safe), strings
 * without lone surrogates (they have no UTF-8 form, so no hash), plain arrays and objects.
 */
export function validateValue(v: unknown): asserts v is Value {
  if (v === null || typeof v === 'boolean') return;
  if (typeof v === 'string') {
    if (hasLoneSurrogate(v)) throw new ValueError('not_a_value', 'a string with a lone surrogate');
    return;
  }
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new ValueError('float', String(v));
    if (!Number.isSafeInteger(v)) throw new ValueError('int_out_of_range', String(v));
    return;
  }
  if (Array.isArray(v)) {
    for (const item of v) validateValue(item);
    return;
  }
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const [k, item] of Object.entries(v)) {
      if (hasLoneSurrogate(k)) throw new ValueError('not_a_value', 'a key with a lone surrogate');
      validateValue(item);
    }
    return;
  }
  throw new ValueError('not_a_value', typeof v);
}

/** Whether `v` is a valid {@link Value}. */
export function isValue(v: unknown): v is Value {
  try {
    validateValue(v);
    return true;
  } catch (e) {
    if (e instanceof ValueError) return false;
    throw e;
  }
}

/**
 * Converts a parsed JSON tree (see `json.ts`) to a value, refusing number tokens that are not
 * safe integers. Maps are rebuilt with own properties only.
 */
export function valueFromTree(tree: JsonTree): Value {
  if (tree instanceof JsonNumberError) throw new ValueError(tree.kind, tree.raw);
  if (tree === null || typeof tree !== 'object') return tree;
  if (Array.isArray(tree)) return tree.map(valueFromTree);
  const out: { [key: string]: Value } = {};
  for (const k of Object.keys(tree)) {
    const item = getOwn(tree, k);
    if (item !== undefined) setOwn(out, k, valueFromTree(item));
  }
  return out;
}

/**
 * Parses JSON text into a value exactly as the Rust side does: `85.5`, `1.0`, `1e3` and `-0` are
 * floats, `9007199254740992` is out of range. Throws {@link ValueError} for those, or
 * `JsonSyntaxError` if the text is not JSON.
 */
export function parseJsonValue(text: string): Value {
  return valueFromTree(parseJsonTree(text));
}

/** Structural equality of two values (map key order is irrelevant). */
export function valueEquals(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => {
      const other = b[i];
      return other !== undefined && valueEquals(item, other);
    });
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => {
    const x = getOwn(a, k);
    const y = getOwn(b, k);
    return x !== undefined && y !== undefined && valueEquals(x, y);
  });
}
