import { describe, expect, it } from 'vitest';

import {
  canonical,
  importPublicJwk,
  readSignature,
  signatureValue,
  signStatement,
  signedBytes,
  valueFromTree,
  verifySignature,
  type Statement,
} from '../../src/protocol';
import { asList, asStr, fixture, get } from './protocolFixtures';

const file = fixture('signatures.json');

function jwkOf(x: ReturnType<typeof get>): JsonWebKey {
  return { kty: asStr(get(x, 'kty')), crv: asStr(get(x, 'crv')), x: asStr(get(x, 'x')), y: asStr(get(x, 'y')) };
}

describe('signatures.json fixture (pinned; a change is a protocol break)', () => {
  const cases = asList(get(file, 'cases'));
  it('has the cases', () => expect(cases.length).toBe(6));
  for (const c of cases) {
    const name = asStr(get(c, 'name'));
    it(`${name}: signed bytes and verdict as in Rust`, async () => {
      const key = await importPublicJwk(jwkOf(get(file, 'device_public_key')));
      const sig = readSignature(valueFromTree(get(c, 'signature') ?? null));
      if (typeof sig === 'string') throw new Error(sig);
      expect(new TextDecoder().decode(signedBytes(sig.statement))).toBe(asStr(get(c, 'signed_bytes')));
      expect(await verifySignature(key, sig)).toBe(get(c, 'valid') === true);
    });
  }
});

describe('signing with WebCrypto', () => {
  it('a signature made here verifies, and a changed statement does not', async () => {
    const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
    const statement: Statement = {
      purpose: 'photo',
      device: '00000000-0000-0000-0000-0000000000a1',
      sha256: '9f'.repeat(32),
      size: 1024,
      content_type: 'image/jpeg',
      captured_at_ms: 1_711_849_000_000,
      position: { lat: '28.234567', lon: '114.876543', accuracy_m: '4.5', altitude_m: null },
    };
    const signed = await signStatement(pair.privateKey, statement);
    expect(await verifySignature(pair.publicKey, signed)).toBe(true);
    // The wire value round-trips and keeps its canonical bytes.
    const back = readSignature(signatureValue(signed));
    if (typeof back === 'string') throw new Error(back);
    expect(canonical(back.statement)).toBe(canonical(statement));
    expect(await verifySignature(pair.publicKey, { ...signed, statement: { ...statement, size: 1025 } })).toBe(false);
  });

  it('refuses values that are not signatures, saying why', () => {
    expect(readSignature('签名: 林业局 A')).toBe('not an object');
    expect(readSignature({ alg: 'RS256', sig: '', statement: {} })).toMatch(/RS256/);
    expect(readSignature({ alg: 'ES256', sig: 'AA', statement: { device: 'x' } })).toMatch(/purpose/);
  });
});
