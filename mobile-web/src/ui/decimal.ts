/**
 * Exact decimals for the acceptance table's numbers (the server refuses floats; a threshold is
 * never decided by rounding). Mirrors what the server accepts: a plain decimal, optionally
 * followed by the part's own unit (`"85.5"`, `"85.5 %"`, `"120米"`).
 */

export interface Decimal {
  negative: boolean;
  /** Integer digits without leading zeros ('' for zero). */
  int: string;
  /** Fraction digits without trailing zeros. */
  frac: string;
}

const NUMBER = /^([+-]?)(\d+)(?:\.(\d+))?$/;

/** The server's limits (`server/src/acceptance/decimal.rs`): more digits are refused there. */
export const MAX_INT_DIGITS = 15;
export const MAX_SCALE = 9;

export function parseDecimal(text: string): Decimal | null {
  const m = NUMBER.exec(text.trim());
  if (!m) return null;
  const int = (m[2] ?? '').replace(/^0+/, '');
  const frac = (m[3] ?? '').replace(/0+$/, '');
  return { negative: m[1] === '-' && (int !== '' || frac !== ''), int, frac };
}

export type ParsedNumber = { ok: true; value: Decimal; text: string } | { ok: false; message: string };

/** Parses an inspector's input for a number part with `unit`. */
export function parseMeasured(input: string, unit: string): ParsedNumber {
  let t = input.trim();
  if (t === '') return { ok: false, message: '请输入数值' };
  if (unit && t.endsWith(unit)) t = t.slice(0, -unit.length).trim();
  const d = parseDecimal(t);
  if (!d) return { ok: false, message: `请输入数字${unit ? `（单位：${unit}）` : ''}，如 85.5` };
  const [intDigits = '', fracDigits = ''] = t.replace(/^[+-]/, '').split('.');
  if (intDigits.replace(/^0+/, '').length > MAX_INT_DIGITS || fracDigits.length > MAX_SCALE) {
    return { ok: false, message: `位数太多：整数最多 ${MAX_INT_DIGITS} 位，小数最多 ${MAX_SCALE} 位` };
  }
  return { ok: true, value: d, text: t.replace(/^\+/, '') };
}

function cmpMagnitude(a: Decimal, b: Decimal): number {
  if (a.int.length !== b.int.length) return a.int.length < b.int.length ? -1 : 1;
  if (a.int !== b.int) return a.int < b.int ? -1 : 1;
  const n = Math.max(a.frac.length, b.frac.length);
  const fa = a.frac.padEnd(n, '0');
  const fb = b.frac.padEnd(n, '0');
  return fa === fb ? 0 : fa < fb ? -1 : 1;
}

export function compareDecimal(a: Decimal, b: Decimal): number {
  if (a.negative !== b.negative) return a.negative ? -1 : 1;
  const m = cmpMagnitude(a, b);
  return a.negative ? -m : m;
}

/** Whether `value op threshold` holds; `op` as the template writes it. */
export function meets(value: Decimal, op: string, threshold: Decimal): boolean {
  const c = compareDecimal(value, threshold);
  switch (op) {
    case '≤':
    case '<=':
    case 'le':
      return c <= 0;
    case '≥':
    case '>=':
    case 'ge':
      return c >= 0;
    case '<':
    case 'lt':
      return c < 0;
    case '>':
    case 'gt':
      return c > 0;
    default:
      return c === 0;
  }
}

export function opSymbol(op: string): string {
  const symbols: Record<string, string> = { le: '≤', ge: '≥', lt: '<', gt: '>', eq: '=', '<=': '≤', '>=': '≥', '==': '=' };
  return symbols[op] ?? op;
}
