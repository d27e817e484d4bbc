/**
 * Who wrote a value: device ids resolved to people (`GET /api/v1/devices/{id}/owner`), kept on
 * the phone so conflicts read “张三（水利局）” offline too.
 */
import type { YanshouDb } from './db';

export type Owners = Record<string, string>;

export async function loadOwners(db: YanshouDb): Promise<Owners> {
  return ((await db.meta.get('owners'))?.value as Owners | undefined) ?? {};
}

export async function saveOwners(db: YanshouDb, owners: Owners): Promise<void> {
  await db.meta.put({ key: 'owners', value: owners });
}

export function ownerName(owners: Owners, device: string): string {
  if (device === '00000000-0000-0000-0000-000000000000') return '服务器';
  return owners[device] ?? `设备 ${device.slice(0, 8)}`;
}
