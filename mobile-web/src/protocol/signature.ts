/**
 * Device signatures (PROTOCOL.md §12): one format for a section signature, a photo's capture
 * attestation and an expert's word on the opinion letter.
 *
 * A **statement** (a map naming its `purpose` and `device`) is signed as the UTF-8 of its
 * canonical JSON, with ECDSA P-256 / SHA-256 by the enrolled device's non-extractable WebCrypto
 * key; the signature is WebCrypto's own `r‖s` (64 bytes), in base64url without padding. The wire
 * value is `{alg: 'ES256', sig, statement}`. Byte-identical to the Rust `signature` module,
 * checked against `sync-protocol/fixtures/signatures.json`.
 *
 * Uses only WebCrypto (`crypto.subtle`, in browsers and in Node), no DOM.
 */

import { utf8ToBytes } from '@noble/hashes/utils.js';

import { canonical } from './canonical';
import type { Value } from './value';

export const SIGNATURE_ALG = 'ES256';

export type Purpose = 'section' | 'photo' | 'letter';

export type Statement = { [key: string]: Value } & { purpose: Purpose; device: string };

export interface DeviceSignature {
  alg: typeof SIGNATURE_ALG;
  sig: string;
  statement: Statement;
}

const ECDSA = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** The bytes a statement's signature covers. */
export function signedBytes(statement: Statement): Uint8Array<ArrayBuffer> {
  const bytes = utf8ToBytes(canonical(statement));
  // A copy on a plain ArrayBuffer, as WebCrypto's typings want.
  const out = new Uint8Array(new ArrayBuffer(bytes.length));
  out.set(bytes);
  return out;
}

export function base64url(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fromBase64url(text: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4);
  try {
    const bin = atob(b64);
    const out = new Uint8Array(new ArrayBuffer(bin.length));
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

/** Signs a statement with the device's private key. */
export async function signStatement(privateKey: CryptoKey, statement: Statement): Promise<DeviceSignature> {
  const sig = new Uint8Array(await crypto.subtle.sign(ECDSA, privateKey, signedBytes(statement)));
  return { alg: SIGNATURE_ALG, sig: base64url(sig), statement };
}

/** The wire value of a signature (what a `sign` op carries, what an evidence set holds). */
export function signatureValue(s: DeviceSignature): Value {
  return { alg: s.alg, sig: s.sig, statement: s.statement };
}

/** Reads a wire value as a signature, or says why it is not one. */
export function readSignature(v: Value): DeviceSignature | string {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'not an object';
  for (const k of Object.keys(v)) {
    if (k !== 'alg' && k !== 'sig' && k !== 'statement') return `unknown member ${k}`;
  }
  if (v.alg !== SIGNATURE_ALG) return `unsupported algorithm ${String(v.alg)}`;
  if (typeof v.sig !== 'string') return 'sig is missing';
  const st = v.statement;
  if (st === null || typeof st !== 'object' || Array.isArray(st)) return 'statement is missing';
  const purpose = st.purpose;
  if (purpose !== 'section' && purpose !== 'photo' && purpose !== 'letter') return 'statement has no purpose';
  if (typeof st.device !== 'string') return 'statement has no device id';
  return { alg: SIGNATURE_ALG, sig: v.sig, statement: { ...st, purpose, device: st.device } };
}

/** Whether the signature holds under the device's public key. */
export async function verifySignature(publicKey: CryptoKey, s: DeviceSignature): Promise<boolean> {
  const sig = fromBase64url(s.sig);
  if (sig === null || sig.length !== 64) return false;
  return crypto.subtle.verify(ECDSA, publicKey, sig, signedBytes(s.statement));
}

/** A device's public key from its JWK (as enrolled). */
export async function importPublicJwk(jwk: JsonWebKey): Promise<CryptoKey> {
  return crypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
}
