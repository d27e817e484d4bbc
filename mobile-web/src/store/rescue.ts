/**
 * The rescue file: every op the server has not confirmed and every rejection, as one JSON file
 * the inspector can hand over (by cable, chat or USB) when the phone cannot sync. The ops are
 * exactly as the phone would send them, so the county office can replay them later.
 */
import { loadDevice } from '../device/session';
import type { YanshouDb } from './db';
import { rescueExport } from './replica';

export interface RescueFile {
  kind: 'yanshou-rescue';
  version: 1;
  exported_at: string;
  username: string;
  device: string | null;
  ops: unknown[];
  rejections: unknown[];
}

export async function buildRescueFile(db: YanshouDb, username: string, now = new Date()): Promise<RescueFile> {
  const device = await loadDevice(db);
  const { outbox, rejections } = await rescueExport(db);
  return {
    kind: 'yanshou-rescue',
    version: 1,
    exported_at: now.toISOString(),
    username,
    device: device?.id ?? null,
    ops: outbox.map((r) => ({ ...r.op, acknowledged_at: r.ackedAt })),
    rejections,
  };
}

/** Saves the rescue file through the browser's download; returns how many ops it holds. */
export async function downloadRescueFile(db: YanshouDb, username: string): Promise<number> {
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
  return file.ops.length + file.rejections.length;
}
