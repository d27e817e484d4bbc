/**
 * A strict JSON reader that keeps what `JSON.parse` throws away: the source text of numbers.
 *
 * `JSON.parse("1.0")` is `1`, so a float sent on the wire would pass a check done after parsing,
 * while the Rust side (serde_json) refuses it. This reader classifies every number token the way
 * serde_json does and leaves a {@link JsonNumberError} in the tree instead of a number when the
 * token is not an integer within ±(2^53 − 1), so the caller decides (a field value → a value
 * error; an ignored key → nothing; a version number → a malformed message).
 *
 * serde_json's number rules, reproduced: a fraction or exponent is a float; `-0` is a float;
 * an integer beyond u64 (or below i64) is parsed as a float; other integers are integers.
 */

import { setOwn } from './record';

/** A number token that is not a safe integer, kept in the tree for the caller to judge. */
export class JsonNumberError {
  constructor(
    /** The token as written, e.g. `"1.0"`. */
    readonly raw: string,
    /** `float` (fraction, exponent, `-0`, beyond 64 bits) or `int_out_of_range`. */
    readonly kind: 'float' | 'int_out_of_range',
  ) {}
}

/** What {@link parseJsonTree} returns. */
export type JsonTree =
  | null
  | boolean
  | string
  | number
  | JsonNumberError
  | JsonTree[]
  | { [key: string]: JsonTree };

/** The text is not JSON. */
export class JsonSyntaxError extends Error {
  override readonly name = 'JsonSyntaxError';
  constructor(
    message: string,
    /** UTF-16 offset in the text. */
    readonly position: number,
  ) {
    super(`${message} at position ${position}`);
  }
}

const MAX_SAFE = 9_007_199_254_740_991n;
const U64_MAX = 18_446_744_073_709_551_615n;
const I64_MIN_MAGNITUDE = 9_223_372_036_854_775_808n;
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/** Classifies one number token as serde_json would see it. */
export function classifyNumber(raw: string): number | JsonNumberError {
  if (/[.eE]/.test(raw)) return new JsonNumberError(raw, 'float');
  const negative = raw.startsWith('-');
  const digits = negative ? raw.slice(1) : raw;
  if (digits.length <= 15) {
    const n = Number(digits);
    if (negative && n === 0) return new JsonNumberError(raw, 'float');
    return negative ? -n : n;
  }
  const magnitude = BigInt(digits);
  if (negative ? magnitude > I64_MIN_MAGNITUDE : magnitude > U64_MAX) {
    return new JsonNumberError(raw, 'float');
  }
  if (magnitude > MAX_SAFE) return new JsonNumberError(raw, 'int_out_of_range');
  const n = Number(magnitude);
  return negative ? -n : n;
}

/** Parses JSON text strictly (RFC 8259; lone surrogates refused as serde_json does). */
export function parseJsonTree(text: string): JsonTree {
  const reader = new Reader(text);
  reader.ws();
  const value = reader.value(0);
  reader.ws();
  if (reader.i !== text.length) reader.fail('trailing characters');
  return value;
}

const MAX_DEPTH = 128; // serde_json's recursion limit

class Reader {
  i = 0;
  constructor(readonly text: string) {}

  fail(message: string): never {
    throw new JsonSyntaxError(message, this.i);
  }

  ws(): void {
    const t = this.text;
    while (this.i < t.length) {
      const c = t.charCodeAt(this.i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.i++;
      else break;
    }
  }

  value(depth: number): JsonTree {
    if (depth > MAX_DEPTH) this.fail('recursion limit exceeded');
    const c = this.text.charCodeAt(this.i);
    switch (c) {
      case 0x7b /* { */:
        return this.object(depth);
      case 0x5b /* [ */:
        return this.array(depth);
      case 0x22 /* " */:
        return this.string();
      case 0x74 /* t */:
        return this.literal('true', true);
      case 0x66 /* f */:
        return this.literal('false', false);
      case 0x6e /* n */:
        return this.literal('null', null);
      default:
        return this.number();
    }
  }

  literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.i)) this.fail('expected value');
    this.i += word.length;
    return value;
  }

  number(): number | JsonNumberError {
    NUMBER.lastIndex = this.i;
    const m = NUMBER.exec(this.text);
    if (m === null) this.fail('expected value');
    const raw = m[0];
    this.i += raw.length;
    return classifyNumber(raw);
  }

  string(): string {
    const t = this.text;
    this.i++; // opening quote
    let out = '';
    let start = this.i;
    for (;;) {
      if (this.i >= t.length) this.fail('EOF while parsing a string');
      const c = t.charCodeAt(this.i);
      if (c === 0x22) {
        out += t.slice(start, this.i);
        this.i++;
        break;
      }
      if (c < 0x20) this.fail('control character in string');
      if (c === 0x5c) {
        out += t.slice(start, this.i);
        this.i++;
        out += this.escape();
        start = this.i;
        continue;
      }
      if (c >= 0xd800 && c <= 0xdfff) {
        const next = t.charCodeAt(this.i + 1);
        if (c >= 0xdc00 || !(next >= 0xdc00 && next <= 0xdfff)) this.fail('lone surrogate in string');
        this.i += 2;
        continue;
      }
      this.i++;
    }
    return out;
  }

  escape(): string {
    const t = this.text;
    const c = t[this.i];
    this.i++;
    switch (c) {
      case '"':
        return '"';
      case '\\':
        return '\\';
      case '/':
        return '/';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'u': {
        const unit = this.hex4();
        if (unit >= 0xdc00 && unit <= 0xdfff) this.fail('lone trailing surrogate in hex escape');
        if (unit >= 0xd800 && unit <= 0xdbff) {
          if (t[this.i] !== '\\' || t[this.i + 1] !== 'u') this.fail('lone leading surrogate in hex escape');
          this.i += 2;
          const low = this.hex4();
          if (low < 0xdc00 || low > 0xdfff) this.fail('lone leading surrogate in hex escape');
          return String.fromCharCode(unit, low);
        }
        return String.fromCharCode(unit);
      }
      default:
        this.i--;
        return this.fail('invalid escape');
    }
  }

  hex4(): number {
    const h = this.text.slice(this.i, this.i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail('invalid \\u escape');
    this.i += 4;
    return parseInt(h, 16);
  }

  array(depth: number): JsonTree[] {
    this.i++;
    const out: JsonTree[] = [];
    this.ws();
    if (this.text[this.i] === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.text[this.i];
      this.i++;
      if (c === ']') return out;
      if (c !== ',') {
        this.i--;
        this.fail("expected ',' or ']'");
      }
    }
  }

  object(depth: number): { [key: string]: JsonTree } {
    this.i++;
    const out: { [key: string]: JsonTree } = {};
    this.ws();
    if (this.text[this.i] === '}') {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.text[this.i] !== '"') this.fail('expected a key string');
      const key = this.string();
      this.ws();
      if (this.text[this.i] !== ':') this.fail("expected ':'");
      this.i++;
      this.ws();
      setOwn(out, key, this.value(depth + 1));
      this.ws();
      const c = this.text[this.i];
      this.i++;
      if (c === '}') return out;
      if (c !== ',') {
        this.i--;
        this.fail("expected ',' or '}'");
      }
    }
  }
}
