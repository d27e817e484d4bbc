/**
 * Taking a photo into an item (PROTOCOL.md §12–13): the file is checked as the server will
 * check it (type by magic bytes, size against the announced limit), hashed with WebCrypto,
 * placed by the phone's own position when it has a fix, and attested — the device key signs
 * `{purpose: "photo", device, sha256, size, content_type, captured_at_ms, position}`. The
 * attestation is added to the item's evidence set `<section>/<item>.photos` by an `add` op,
 * in the same IndexedDB transaction that stores the bytes and queues the upload.
 */
import { loadDevice } from '../device/session';
import { signStatement, signatureValue, type Op, type Statement, type Value } from '../protocol';
import { StorageError, uploadKey, type PhotoRow, type UploadRow, type YanshouDb } from '../store/db';
import { LocalRefusal, loadRecord, makeOp } from '../store/replica';
import { cachedLimits } from './limits';
import { photosIn, reconcile } from './reconcile';
import { checkPhoto } from './sniff';

/** The phone's position at capture; decimals as strings (PROTOCOL.md §2). */
export interface Position {
  lat: string;
  lon: string;
  accuracy_m: string | null;
  altitude_m: string | null;
}

/** The evidence set field of an item. */
export function photosField(section: string, item: number): string {
  return `${section}/${item}.photos`;
}

/** A photo the phone refuses before it is stored (shown to the inspector as it is). */
export class PhotoRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PhotoRefusal';
  }
}

function dec(n: number, digits: number): string {
  const t = n.toFixed(digits);
  return /^-0\.?0*$/.test(t) ? t.slice(1) : t;
}

/** A browser position in the attestation's form. */
export function positionOf(c: {
  latitude: number;
  longitude: number;
  accuracy: number | null;
  altitude: number | null;
}): Position {
  return {
    lat: dec(c.latitude, 7),
    lon: dec(c.longitude, 7),
    accuracy_m: c.accuracy === null || !Number.isFinite(c.accuracy) ? null : dec(c.accuracy, 1),
    altitude_m: c.altitude === null || !Number.isFinite(c.altitude) ? null : dec(c.altitude, 1),
  };
}

/** The phone's position within `timeoutMs`, or `null` (no fix, no permission, no GPS). */
export function currentPosition(timeoutMs = 5000): Promise<Position | null> {
  if (typeof navigator === 'undefined' || !navigator.geolocation) return Promise.resolve(null);
  return new Promise((ok) => {
    const timer = setTimeout(() => ok(null), timeoutMs + 500);
    navigator.geolocation.getCurrentPosition(
      (p) => {
        clearTimeout(timer);
        ok(positionOf(p.coords));
      },
      () => {
        clearTimeout(timer);
        ok(null);
      },
      { enableHighAccuracy: true, timeout: timeoutMs, maximumAge: 60_000 },
    );
  });
}

/**
 * Asks for a fix in the background when the permission is already granted (no prompt), so the
 * browser holds a recent one when a photo is taken (`maximumAge`): capture then does not wait.
 */
export async function warmPosition(): Promise<void> {
  if (typeof navigator === 'undefined' || !navigator.geolocation || !navigator.permissions) return;
  try {
    const p = await navigator.permissions.query({ name: 'geolocation' });
    if (p.state === 'granted') await currentPosition(15_000);
  } catch {
    // no Permissions API for geolocation here: the fix is asked for at capture
  }
}

function hex(bytes: ArrayBuffer): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export interface CaptureOptions {
  now?: number;
  /** The position source (tests pass their own). */
  position?: () => Promise<Position | null>;
  /** The thumbnail maker (tests pass their own; the browser one needs a canvas). */
  thumb?: (file: Blob) => Promise<ArrayBuffer | null>;
}

/** Takes `file` into `field` of record `entity`; returns the `add` op. */
export async function attachPhoto(
  db: YanshouDb,
  deviceId: string,
  entity: string,
  field: string,
  file: Blob,
  opts: CaptureOptions = {},
): Promise<Op> {
  const now = opts.now ?? Date.now();
  const data = await file.arrayBuffer();
  const bytes = new Uint8Array(data);
  const checked = checkPhoto(bytes.subarray(0, 16), bytes.length, await cachedLimits(db));
  if (!checked.ok) throw new PhotoRefusal(checked.message);
  const sha256 = hex(await crypto.subtle.digest('SHA-256', data));
  const { view } = await loadRecord(db, entity);
  if (view && photosIn(view, field).some((p) => p.statement['sha256'] === sha256)) {
    throw new LocalRefusal('duplicate_photo', '这张照片已在本项中');
  }
  const device = await loadDevice(db);
  if (!device || device.id !== deviceId) throw new LocalRefusal('no_device', '本机尚未登记设备，请联网重新登录');
  const [position, thumb] = await Promise.all([
    (opts.position ?? currentPosition)(),
    (opts.thumb ?? (async () => null))(file),
  ]);
  const statement: Statement = {
    purpose: 'photo',
    device: deviceId,
    sha256,
    size: bytes.length,
    content_type: checked.contentType,
    captured_at_ms: now,
    position: position === null ? null : { ...position },
  };
  const attestation = await signStatement(device.key.privateKey, statement);
  return makeOp(db, deviceId, entity, { kind: 'add', field, element: signatureValue(attestation) }, now, {
    tables: [db.photos, db.uploads],
    write: async () => {
      const key = uploadKey(entity, sha256);
      const existing = await db.uploads.get(key);
      if (existing?.state === 'dropped') await db.uploads.update(key, { state: 'pending' });
      if (!existing) {
        const upload: UploadRow = {
          key,
          entity,
          sha256,
          state: 'pending',
          uploadId: null,
          offset: 0,
          message: null,
          attempts: 0,
          nextAt: 0,
          createdAt: now,
        };
        await db.uploads.put(upload);
      }
      // The same bytes again: keep them unless the server already holds them for every record.
      const all = await db.uploads.where('sha256').equals(sha256).toArray();
      const old = await db.photos.get(sha256);
      const photo: PhotoRow = {
        sha256,
        size: bytes.length,
        contentType: checked.contentType,
        bytes: all.every((u) => u.state === 'complete') ? null : data,
        thumb: thumb ?? old?.thumb ?? null,
        capturedAt: old?.capturedAt ?? now,
      };
      await db.photos.put(photo);
    },
  });
}

/** Takes a photo off an item (a `remove` of the element this phone sees). */
export async function removePhoto(
  db: YanshouDb,
  deviceId: string,
  entity: string,
  field: string,
  element: Value,
): Promise<Op> {
  try {
    const op = await makeOp(db, deviceId, entity, { kind: 'remove', field, element });
    await reconcile(db, entity);
    return op;
  } catch (e) {
    if (e instanceof LocalRefusal) throw e;
    throw StorageError.from(e);
  }
}
