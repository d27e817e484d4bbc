/** Reads the Rust crate's golden fixtures straight from sync-protocol/fixtures (never copied). */

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { JsonNumberError, parseJsonTree, type JsonTree } from '../../src/protocol';

export function fixtureText(name: string): string {
  return readFileSync(fileURLToPath(new URL(`../../../sync-protocol/fixtures/${name}`, import.meta.url)), 'utf8');
}

export function fixture(name: string): JsonTree {
  return parseJsonTree(fixtureText(name));
}

type Obj = { [key: string]: JsonTree };

export function asObj(x: JsonTree | undefined): Obj {
  if (x === null || x === undefined || typeof x !== 'object' || Array.isArray(x) || x instanceof JsonNumberError) {
    throw new Error(`expected an object, got ${String(x)}`);
  }
  return x;
}

export function asList(x: JsonTree | undefined): JsonTree[] {
  if (!Array.isArray(x)) throw new Error(`expected a list, got ${String(x)}`);
  return x;
}

export function asStr(x: JsonTree | undefined): string {
  if (typeof x !== 'string') throw new Error(`expected a string, got ${String(x)}`);
  return x;
}

export function get(x: JsonTree | undefined, key: string): JsonTree | undefined {
  const o = asObj(x);
  return Object.hasOwn(o, key) ? o[key] : undefined;
}
