/** The number check shown as an inspector types: exact decimals, the part's unit, the rule. */
import { describe, expect, it } from 'vitest';
import { compareDecimal, meets, parseDecimal, parseMeasured } from '../../src/ui/decimal';

function d(text: string) {
  const v = parseDecimal(text);
  if (!v) throw new Error(`not a decimal: ${text}`);
  return v;
}

describe('decimal input', () => {
  it.each([
    ['85.5', '%', '85.5'],
    ['85.5 %', '%', '85.5'],
    ['120米', '米', '120'],
    [' +7 ', '个', '7'],
    ['000123456789012345.123456789', '米', '000123456789012345.123456789'],
  ])('%s with unit %s reads as %s', (input, unit, text) => {
    const p = parseMeasured(input, unit);
    expect(p.ok && p.text).toBe(text);
  });

  it.each([
    ['abc'],
    ['1e3'],
    ['85.5 m'],
    [''],
    ['1,5'],
    // More digits than the server takes (15 before the point, 9 after).
    ['12.3456789012'],
    ['1.0000000000'],
    ['1234567890123456'],
  ])('%s is refused with a message', (input) => {
    const p = parseMeasured(input, '%');
    expect(p.ok).toBe(false);
    expect(p.ok ? '' : p.message).not.toBe('');
  });

  it('compares exactly, without floating point', () => {
    expect(compareDecimal(d('0.1'), d('0.10'))).toBe(0);
    expect(compareDecimal(d('85.49999999999999999'), d('85.5'))).toBe(-1);
    expect(compareDecimal(d('-2'), d('-10'))).toBe(1);
    expect(compareDecimal(d('100'), d('99.999'))).toBe(1);
    expect(compareDecimal(d('-0'), d('0'))).toBe(0);
  });

  it('checks the template rule with its operator', () => {
    expect(meets(d('85'), 'ge', d('85'))).toBe(true);
    expect(meets(d('84.99'), '≥', d('85'))).toBe(false);
    expect(meets(d('30'), 'le', d('30.0'))).toBe(true);
    expect(meets(d('30.01'), 'le', d('30'))).toBe(false);
    expect(meets(d('5'), 'lt', d('5'))).toBe(false);
    expect(meets(d('5'), 'eq', d('5.000'))).toBe(true);
  });
});
