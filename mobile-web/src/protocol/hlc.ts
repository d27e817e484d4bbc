/**
 * Hybrid logical clocks (PROTOCOL.md §11).
 *
 * - **HLC** ({@link Hlc}): `{wall_ms, counter}`, ordered by wall time then counter. Stays close to
 *   wall time, never goes backwards; a device that has seen an HLC only issues larger ones.
 * - **Clock** ({@link Clock}): plain serialisable state (`{last}`, the Rust `Clock`'s serde form);
 *   {@link tick} issues HLCs (the new clock's `last`), {@link observe} absorbs pulled ones. Both return a new clock.
 * - **Drift bound** ({@link MAX_DRIFT_MS}): a remote HLC further ahead of local time is adopted
 *   only up to the bound, so one device set to 2099 cannot drag every clock into the future.
 *
 * HLCs only order values and break ties; nothing security-relevant depends on them. The caller
 * passes `now` (ms since the epoch); this module never reads a clock.
 */

/** A hybrid logical clock timestamp. */
export interface Hlc {
  /** Milliseconds since the Unix epoch, as the issuing device believed. */
  wall_ms: number;
  /** Disambiguates HLCs within one millisecond (u32). */
  counter: number;
}

/** The per-device clock state; persist it with the outbox. */
export interface Clock {
  /** The largest HLC issued or observed so far. */
  last: Hlc;
}

/** How far (ms) a remote HLC may be ahead of local wall time: 5 minutes. */
export const MAX_DRIFT_MS = 5 * 60 * 1000;
/** The largest counter (u32). */
export const MAX_COUNTER = 0xffff_ffff;
/** The smallest HLC. */
export const HLC_ZERO: Hlc = { wall_ms: 0, counter: 0 };

/** Orders HLCs by (wall_ms, counter): negative, zero or positive. */
export function compareHlc(a: Hlc, b: Hlc): number {
  if (a.wall_ms !== b.wall_ms) return a.wall_ms < b.wall_ms ? -1 : 1;
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1;
  return 0;
}

/** The larger of two HLCs. */
export function maxHlc(a: Hlc, b: Hlc): Hlc {
  return compareHlc(a, b) >= 0 ? a : b;
}

/** The next HLC; rolls over into the next millisecond when the counter is full. */
export function successor(h: Hlc): Hlc {
  return h.counter >= MAX_COUNTER
    ? { wall_ms: h.wall_ms + 1, counter: 0 }
    : { wall_ms: h.wall_ms, counter: h.counter + 1 };
}

/** A clock that has issued and seen nothing. */
export function newClock(): Clock {
  return { last: { ...HLC_ZERO } };
}

/**
 * Issues an HLC strictly greater than everything issued or observed before: returns the new clock,
 * whose `last` is the issued HLC.
 */
export function tick(clock: Clock, nowMs: number): Clock {
  return { last: nowMs > clock.last.wall_ms ? { wall_ms: nowMs, counter: 0 } : successor(clock.last) };
}

/** A remote HLC was more than {@link MAX_DRIFT_MS} ahead of local time; not fatal. */
export interface ClockDrift {
  /** The HLC observed. */
  remote: Hlc;
  /** Local wall time at the observation. */
  now_ms: number;
  /** What the clock adopted instead: the bound. */
  adopted: Hlc;
}

/**
 * Absorbs a remote HLC so that later ticks order after it. A remote beyond `now + 5 min` is
 * adopted only up to that bound and reported as `drift`.
 */
export function observe(
  clock: Clock,
  remote: Hlc,
  nowMs: number,
): { clock: Clock; drift: ClockDrift | null } {
  const bound: Hlc = { wall_ms: nowMs + MAX_DRIFT_MS, counter: 0 };
  if (compareHlc(remote, bound) > 0) {
    return {
      clock: { last: maxHlc(clock.last, bound) },
      drift: { remote, now_ms: nowMs, adopted: bound },
    };
  }
  return { clock: { last: maxHlc(clock.last, remote) }, drift: null };
}
