/**
 * Handwritten strokes blobs (PROTOCOL.md §14): the person's handwriting under a signature,
 * uploaded like a photo (media type {@link STROKES_MEDIA_TYPE}) and named by the signed statement
 * as `strokes: {sha256, size}` of its exact bytes.
 *
 * ```json
 * {"format": "yanshou-strokes/1", "width": 600, "height": 240,
 *  "strokes": [{"points": [[12, 80, 0], [14, 82, 16], …]}, …]}
 * ```
 *
 * Points are integers `[x, y, t]` inside the pad (`0 ≤ x ≤ width`, `0 ≤ y ≤ height`), `t` in
 * milliseconds since the first point and never decreasing through the strokes in order. The
 * phone serialises a blob **once**, as its canonical JSON (§3), and keeps those bytes: the hash
 * the statement names is of exactly what is stored and uploaded. Pure: no DOM.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

import { canonical } from './canonical';
import type { Value } from './value';

export const STROKES_FORMAT = 'yanshou-strokes/1';
export const STROKES_MEDIA_TYPE = 'application/vnd.yanshou.strokes+json';
/** The largest blob the server accepts. */
export const STROKES_MAX_BYTES = 262_144;
/** The most points in one blob, all strokes together. */
export const STROKES_MAX_POINTS = 20_000;
/** The largest pad side. */
export const STROKES_MAX_SIDE = 4096;

export type StrokePoint = [x: number, y: number, t: number];

export interface StrokesBlob {
  format: typeof STROKES_FORMAT;
  width: number;
  height: number;
  strokes: { points: StrokePoint[] }[];
}

/** What a statement names: the blob's exact bytes. */
export interface StrokesRef {
  sha256: string;
  size: number;
}

/** A point as a drawing library records it: CSS pixels in the pad, absolute time in ms. */
export interface PadPoint {
  x: number;
  y: number;
  time: number;
}

/** A blob the phone will not make (empty pad, too many points, a pad of no size). */
export class StrokesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StrokesError';
  }
}

function clampInt(v: number, max: number): number {
  const r = Math.round(Number.isFinite(v) ? v : 0);
  return r < 0 ? 0 : r > max ? max : r;
}

/**
 * The blob of what was drawn on a pad of `width` × `height` CSS pixels: coordinates rounded and
 * kept inside the pad (a finger may leave it mid-stroke), times made relative to the first
 * point and never decreasing (a clock step back during the signature does not break the rule).
 */
export function strokesFromPad(groups: readonly { points: readonly PadPoint[] }[], width: number, height: number): StrokesBlob {
  const w = Math.round(width);
  const h = Math.round(height);
  if (!(w >= 1 && w <= STROKES_MAX_SIDE && h >= 1 && h <= STROKES_MAX_SIDE)) {
    throw new StrokesError(`签字板尺寸无效（${width} × ${height}）`);
  }
  const strokes: { points: StrokePoint[] }[] = [];
  let origin: number | null = null;
  let last = 0;
  let count = 0;
  for (const g of groups) {
    if (g.points.length === 0) continue;
    const points: StrokePoint[] = [];
    for (const p of g.points) {
      if (origin === null) origin = p.time;
      const t = Math.max(last, clampInt(p.time - origin, Number.MAX_SAFE_INTEGER));
      last = t;
      points.push([clampInt(p.x, w), clampInt(p.y, h), t]);
    }
    count += points.length;
    strokes.push({ points });
  }
  if (strokes.length === 0) throw new StrokesError('请先在签字板上签名');
  if (count > STROKES_MAX_POINTS) throw new StrokesError('笔迹过长，请清除后重新签名');
  return { format: STROKES_FORMAT, width: w, height: h, strokes };
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}

/** Why a value is not a valid strokes blob (§14), or `null` when it is one. */
export function strokesProblem(v: unknown): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not an object';
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (k !== 'format' && k !== 'width' && k !== 'height' && k !== 'strokes') return `unknown member ${k}`;
  }
  if (o['format'] !== STROKES_FORMAT) return `format is not ${STROKES_FORMAT}`;
  const width = o['width'];
  const height = o['height'];
  if (!isInt(width, 1, STROKES_MAX_SIDE)) return `width must be an integer 1–${STROKES_MAX_SIDE}`;
  if (!isInt(height, 1, STROKES_MAX_SIDE)) return `height must be an integer 1–${STROKES_MAX_SIDE}`;
  const strokes = o['strokes'];
  if (!Array.isArray(strokes) || strokes.length === 0) return 'strokes must be a non-empty list';
  let count = 0;
  let last = 0;
  for (const [i, s] of strokes.entries()) {
    if (typeof s !== 'object' || s === null || Array.isArray(s)) return `stroke ${i} is not an object`;
    const so = s as Record<string, unknown>;
    if (Object.keys(so).some((k) => k !== 'points')) return `stroke ${i} has members besides points`;
    const points = so['points'];
    if (!Array.isArray(points) || points.length === 0) return `stroke ${i} has no points`;
    for (const [j, p] of points.entries()) {
      if (!Array.isArray(p) || p.length !== 3) return `point ${i}.${j} is not [x, y, t]`;
      const [x, y, t] = p as unknown[];
      if (!isInt(x, 0, width) || !isInt(y, 0, height)) return `point ${i}.${j} is outside the pad`;
      if (!isInt(t, 0, Number.MAX_SAFE_INTEGER)) return `point ${i}.${j} has no time`;
      if (t < last) return `point ${i}.${j} goes back in time`;
      last = t;
    }
    count += points.length;
    if (count > STROKES_MAX_POINTS) return `more than ${STROKES_MAX_POINTS} points`;
  }
  return null;
}

/** The blob's bytes: its canonical JSON in UTF-8 (refuses an invalid or oversized blob). */
export function serializeStrokes(blob: StrokesBlob): Uint8Array<ArrayBuffer> {
  const problem = strokesProblem(blob);
  if (problem !== null) throw new StrokesError(`笔迹数据无效：${problem}`);
  const bytes = utf8ToBytes(canonical(blob as unknown as Value));
  if (bytes.length > STROKES_MAX_BYTES) throw new StrokesError('笔迹过长，请清除后重新签名');
  const out = new Uint8Array(new ArrayBuffer(bytes.length));
  out.set(bytes);
  return out;
}

/** What a statement names for these bytes. */
export function strokesRef(bytes: Uint8Array): StrokesRef {
  return { sha256: bytesToHex(sha256(bytes)), size: bytes.length };
}

/** Reads stored or downloaded bytes back as a blob, or `null` when they are not one. */
export function parseStrokes(bytes: Uint8Array | ArrayBuffer): StrokesBlob | null {
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return strokesProblem(v) === null ? (v as StrokesBlob) : null;
  } catch {
    return null;
  }
}

/** The blob as one SVG path (`M x y L x y …` per stroke; a dot is a zero-length line). */
export function strokesPath(blob: StrokesBlob): string {
  return blob.strokes
    .map((s) => {
      const [first, ...rest] = s.points;
      if (!first) return '';
      const tail = rest.length > 0 ? rest : [first];
      return `M${first[0]} ${first[1]}` + tail.map((p) => `L${p[0]} ${p[1]}`).join('');
    })
    .join('');
}
