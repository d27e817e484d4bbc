/**
 * The rescue file: every op the server has not confirmed and every rejection, as one JSON file
 * the inspector can hand over (by cable, chat or USB) when the phone cannot sync. The ops are
 * exactly as the phone would send them, so the county office can replay them later.
 *
 * Photos not yet uploaded are **listed** (record, hash, size, type, capture time, how far the
 * upload got, the server's reason if it refused one), not embedded: a day's photos are
 * hundreds of megabytes. Their attestations are in the ops; the bytes stay on the phone until
 * the server has them, and the screen says so. Handwritten signatures (strokes blobs, at most
 * 256 KiB each) not yet uploaded are **embedded** (base64url): a signature op is worthless without
 * the exact bytes its statement names.
 */
import { loadDevice } from '../device/session';
import type { YanshouDb } from './db';
import { rescueExport } from './replica';
import { base64url } from '../protocol/signature';

export interface RescueFile {
  kind: 'yanshou-rescue';
  version: 1;
  exported_at: string;
  username: string;
  device: string | null;
  ops: unknown[];
  rejections: unknown[];
  /** Photos the server has not confirmed (their bytes are still on the phone). */
  photos_not_uploaded: RescuePhoto[];
  /** Handwritten signatures the server has not confirmed, with their bytes. */
  strokes_not_uploaded: RescueStrokes[];
}

export interface RescueStrokes {
  record: string;
  sha256: string;
  size: number;
  state: string;
  message: string | null;
  bytes_base64url: string;
}

export interface RescuePhoto {
  record: string;
  sha256: string;
  size: number | null;
  content_type: string | null;
  captured_at_ms: number | null;
  state: string;
  uploaded_bytes: number;
  message: string | null;
}

export async function buildRescueFile(db: YanshouDb, username: string, now = new Date()): Promise<RescueFile> {
  const device = await loadDevice(db);
  const { outbox, rejections } = await rescueExport(db);
  const uploads = (await db.uploads.toArray()).filter((u) => u.state !== 'complete');
  const photos = await db.photos.bulkGet(uploads.map((u) => u.sha256));
  const strokes = (await db.strokes.toArray()).filter((r) => r.state !== 'complete');
  return {
    kind: 'yanshou-rescue',
    version: 1,
    exported_at: now.toISOString(),
    username,
    device: device?.id ?? null,
    ops: outbox.map((r) => ({ ...r.op, acknowledged_at: r.ackedAt })),
    rejections,
    photos_not_uploaded: uploads.map((u, i) => ({
      record: u.entity,
      sha256: u.sha256,
      size: photos[i]?.size ?? null,
      content_type: photos[i]?.contentType ?? null,
      captured_at_ms: photos[i]?.capturedAt ?? null,
      state: u.state,
      uploaded_bytes: u.offset,
      message: u.message,
    })),
    strokes_not_uploaded: strokes.map((r) => ({
      record: r.entity,
      sha256: r.sha256,
      size: r.size,
      state: r.state,
      message: r.message,
      bytes_base64url: base64url(new Uint8Array(r.bytes)),
    })),
  };
}

/** Saves the rescue file through the browser's download; returns how many ops and photos it
 * names. */
export async function downloadRescueFile(
  db: YanshouDb,
  username: string,
): Promise<{ items: number; photos: number }> {
  const file = await buildRescueFile(db, username);
  const blob = new Blob([JSON.stringify(file, null, 2)], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = `yanshou-rescue-${username}-${file.exported_at.replace(/[:.]/g, '-')}.json`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return { items: file.ops.length + file.rejections.length, photos: file.photos_not_uploaded.length };
}
