/**
 * Canonical encoding and hashing (PROTOCOL.md §3).
 *
 * `canonical(v)`: JSON with no whitespace, map keys sorted by UTF-16 code units, strings escaped
 * exactly as `JSON.stringify` escapes them, integers in plain decimal: RFC 8785 restricted to
 * integers, byte-identical to the Rust `canonical_json`. `contentHash(v)`: lowercase hex SHA-256
 * of its UTF-8 bytes (synchronous, via `@noble/hashes`, so merge stays synchronous).
 *
 * A **section document** is what a signature covers: entity id and type, the section name, its
 * scalar fields and its set fields (elements sorted). A section holding an unresolved conflict has
 * no hash: nobody can sign "one of these values".
 */

import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

import { cmpCodePoints, cmpUtf16, getOwn, setOwn } from './record';
import { sectionOf, type EntityState } from './types';
import { validateValue, type Value } from './value';

/** The canonical JSON text of a value; throws `ValueError` for an invalid value. */
export function canonical(v: Value): string {
  validateValue(v);
  return write(v);
}

function write(v: Value): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      return String(v === 0 ? 0 : v); // -0 prints as 0; safe integers never use exponents
    case 'string':
      return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map(write).join(',')}]`;
  const keys = Object.keys(v).sort(cmpUtf16);
  const parts: string[] = [];
  for (const k of keys) {
    const item = getOwn(v, k);
    if (item !== undefined) parts.push(`${JSON.stringify(k)}:${write(item)}`);
  }
  return `{${parts.join(',')}}`;
}

/** Lowercase hex SHA-256 of the UTF-8 bytes of a string. */
export function sha256Hex(text: string): string {
  return bytesToHex(sha256(utf8ToBytes(text)));
}

/** Lowercase hex SHA-256 of the canonical JSON of a value. */
export function contentHash(v: Value): string {
  return sha256Hex(canonical(v));
}

/**
 * The document a section signature covers, or `null` if a scalar field of the section is in
 * conflict (see {@link conflictedField} for which one).
 */
export function sectionDocument(state: EntityState, section: string): Value | null {
  const fields: { [key: string]: Value } = {};
  for (const key of Object.keys(state.fields)) {
    if (sectionOf(key) !== section) continue;
    const field = getOwn(state.fields, key);
    if (field === undefined) continue;
    if (field.conflict !== null) return null;
    setOwn(fields, key, field.value);
  }
  const sets: { [key: string]: Value } = {};
  for (const key of Object.keys(state.sets)) {
    if (sectionOf(key) !== section) continue;
    const set = getOwn(state.sets, key);
    if (set === undefined) continue;
    const elements = Object.values(set.elements).map((e) => ({ text: canonical(e.value), value: e.value }));
    elements.sort((a, b) => cmpUtf16(a.text, b.text));
    setOwn(
      sets,
      key,
      elements.map((e) => e.value),
    );
  }
  return { entity: state.id, entity_type: state.entity_type, fields, section, sets };
}

/** The first conflicted scalar field of a section (key order as in Rust), or null. */
export function conflictedField(state: EntityState, section: string): string | null {
  const keys = Object.keys(state.fields)
    .filter((k) => sectionOf(k) === section && getOwn(state.fields, k)?.conflict != null)
    .sort(cmpCodePoints);
  return keys[0] ?? null;
}

/** The content hash of a section (what a `sign` op's `content_hash` must equal), or `null` when conflicted. */
export function sectionHash(state: EntityState, section: string): string | null {
  const doc = sectionDocument(state, section);
  return doc === null ? null : contentHash(doc);
}
