/**
 * Safe helpers for plain objects used as maps (`Record<string, T>`).
 *
 * Map keys come from the wire (field keys, section names, canonical element text), so a key may
 * be `"__proto__"`, `"constructor"` or `"toString"`. Plain `obj[key]` would read inherited
 * members and `obj[key] = v` with `"__proto__"` would replace the prototype; these helpers only
 * ever touch own properties.
 */

/** The own property `key` of `rec`, or `undefined`. */
export function getOwn<T>(rec: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(rec, key) ? rec[key] : undefined;
}

/** Whether `rec` has its own property `key`. */
export function hasOwn(rec: Readonly<Record<string, unknown>>, key: string): boolean {
  return Object.hasOwn(rec, key);
}

/** Sets an own property in place (for objects being built); safe for `"__proto__"`. */
export function setOwn<T>(rec: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') {
    Object.defineProperty(rec, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    rec[key] = value;
  }
}

/** A copy of `rec` with `key` set to `value` (existing keys keep their position). */
export function withKey<T>(rec: Readonly<Record<string, T>>, key: string, value: T): Record<string, T> {
  const out: Record<string, T> = { ...rec };
  setOwn(out, key, value);
  return out;
}

/** A copy of `rec` without `key`. */
export function withoutKey<T>(rec: Readonly<Record<string, T>>, key: string): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of Object.entries(rec)) {
    if (k !== key) setOwn(out, k, v);
  }
  return out;
}

/** Compares strings by UTF-16 code units: JavaScript's default order, used by the canonical encoding. */
export function cmpUtf16(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Compares strings by Unicode code points, which is UTF-8 byte order: the order Rust's
 * `BTreeMap<String, _>` serialises map keys on the wire. It differs from UTF-16 order only for
 * characters beyond U+FFFF against U+E000..U+FFFF.
 */
export function cmpCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      const xs = x >= 0xd800 && x <= 0xdfff;
      const ys = y >= 0xd800 && y <= 0xdfff;
      // A surrogate (a character beyond U+FFFF) sorts after every BMP character.
      if (xs !== ys) return xs ? 1 : -1;
      return x < y ? -1 : 1;
    }
  }
  return a.length - b.length;
}

/** A copy of `rec` with keys in `cmp` order (for wire output that must match Rust byte for byte). */
export function sortedRecord<T>(
  rec: Readonly<Record<string, T>>,
  cmp: (a: string, b: string) => number = cmpCodePoints,
): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k of Object.keys(rec).sort(cmp)) {
    const v = getOwn(rec, k);
    if (v !== undefined) setOwn(out, k, v);
  }
  return out;
}
