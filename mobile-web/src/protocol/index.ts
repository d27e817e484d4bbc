/**
 * The TypeScript twin of the Rust `sync-protocol` crate (see sync-protocol/PROTOCOL.md): values,
 * canonical encoding and hashing, hybrid logical clocks, the op/state/change/wire types, the merge
 * rules, wire decoding and the device replica. Pure: no DOM, no IndexedDB, no fetch, no clock —
 * time and ids are passed in. Run against the crate's golden fixtures in tests/unit/protocol*.
 */

export * from './value';
export * from './json';
export * from './record';
export * from './canonical';
export * from './hlc';
export * from './types';
export * from './merge';
export * from './change';
export * from './wire';
export * from './client';
export * from './signature';
export * from './strokes';
export * from './statements';
