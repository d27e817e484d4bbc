/**
 * Evidence photos (PROTOCOL.md §13): a forestry inspector at the mine with no signal takes a
 * photo for an item; it is on the item at once (thumbnail, 待上传), survives a reload with no
 * network, and once the phone is online it uploads, and the server's findings — where and when
 * it was taken, judged against the mine's boundary and the visit — come back through sync.
 *
 * The photo is a real JPEG made here: chromium's canvas encodes the image, and an EXIF block
 * (GPS position and capture time with its offset) is written in front of it by hand.
 */
import { createHash } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  launchBrowser,
  recordBudget,
  loginUi,
  newPhone,
  shot,
  syncUi,
  tid,
  until,
  waitControlled,
  YanshouServer,
  type Phone,
} from './harness';

const FIELD = 'forestry/19.photos';
const MINE = '青龙山石灰岩矿';
const INSPECTOR = 'linye.photos';
/** Inside the boundary below (about 1.1 km × 1 km around it). */
const PHONE_AT = { latitude: 28.235, longitude: 114.905, accuracy: 10 };
/** Where the camera's EXIF says: 44 m north of the phone's fix, still inside. */
const EXIF_AT = { lat: 28.2354, lon: 114.905 };

let server: YanshouServer;
let browser: Browser;
let phone: Phone;
let roundId = '';
let jpeg: Buffer;

// ───────────── a JPEG with EXIF ─────────────

/** A TIFF/EXIF block (little-endian) with GPS and DateTimeOriginal + OffsetTimeOriginal. */
function exifBlock(lat: number, lon: number, when: string, offset: string): Buffer {
  type Entry = { tag: number; type: number; count: number; data: Buffer };
  const ascii = (s: string) => Buffer.from(s + '\0', 'latin1');
  const rationals = (xs: [number, number][]) => {
    const b = Buffer.alloc(8 * xs.length);
    xs.forEach(([n, d], i) => {
      b.writeUInt32LE(n, i * 8);
      b.writeUInt32LE(d, i * 8 + 4);
    });
    return b;
  };
  const dms = (deg: number): [number, number][] => {
    const d = Math.floor(deg);
    const m = Math.floor((deg - d) * 60);
    const s = Math.round(((deg - d) * 60 - m) * 60 * 10000);
    return [
      [d, 1],
      [m, 1],
      [s, 10000],
    ];
  };
  // Layout: header(8) | IFD0 | Exif IFD | GPS IFD | data
  const ifdSize = (n: number) => 2 + n * 12 + 4;
  const exifPointer = Buffer.alloc(4);
  const gpsPointer = Buffer.alloc(4);
  const ifd0: Entry[] = [
    { tag: 0x8769, type: 4, count: 1, data: exifPointer }, // ExifIFDPointer
    { tag: 0x8825, type: 4, count: 1, data: gpsPointer }, // GPSInfoIFDPointer
  ];
  const exif: Entry[] = [
    { tag: 0x9003, type: 2, count: 20, data: ascii(when) }, // DateTimeOriginal
    { tag: 0x9011, type: 2, count: 7, data: ascii(offset) }, // OffsetTimeOriginal
  ];
  const gps: Entry[] = [
    { tag: 0x0000, type: 1, count: 4, data: Buffer.from([2, 3, 0, 0]) }, // GPSVersionID
    { tag: 0x0001, type: 2, count: 2, data: ascii('N') },
    { tag: 0x0002, type: 5, count: 3, data: rationals(dms(lat)) },
    { tag: 0x0003, type: 2, count: 2, data: ascii('E') },
    { tag: 0x0004, type: 5, count: 3, data: rationals(dms(lon)) },
  ];
  const ifd0At = 8;
  const exifAt = ifd0At + ifdSize(ifd0.length);
  const gpsAt = exifAt + ifdSize(exif.length);
  let dataAt = gpsAt + ifdSize(gps.length);
  exifPointer.writeUInt32LE(exifAt);
  gpsPointer.writeUInt32LE(gpsAt);
  const extra: Buffer[] = [];
  const ifd = (entries: Entry[]) => {
    const b = Buffer.alloc(ifdSize(entries.length));
    b.writeUInt16LE(entries.length, 0);
    entries.forEach((e, i) => {
      const o = 2 + i * 12;
      b.writeUInt16LE(e.tag, o);
      b.writeUInt16LE(e.type, o + 2);
      b.writeUInt32LE(e.count, o + 4);
      if (e.data.length <= 4) {
        e.data.copy(b, o + 8);
      } else {
        b.writeUInt32LE(dataAt, o + 8);
        extra.push(e.data);
        dataAt += e.data.length;
        if (e.data.length % 2) {
          extra.push(Buffer.alloc(1));
          dataAt += 1;
        }
      }
    });
    b.writeUInt32LE(0, 2 + entries.length * 12);
    return b;
  };
  const header = Buffer.from([0x49, 0x49, 0x2a, 0x00, 0x08, 0x00, 0x00, 0x00]);
  const parts = [header, ifd(ifd0), ifd(exif), ifd(gps)];
  return Buffer.concat([...parts, ...extra]);
}

/** A real JPEG (encoded by chromium's canvas) with an EXIF APP1 segment after its SOI. */
async function makeJpeg(page: Page): Promise<Buffer> {
  const b64 = await page.evaluate(() => {
    const c = document.createElement('canvas');
    c.width = 640;
    c.height = 480;
    const g = c.getContext('2d');
    if (!g) throw new Error('no 2d context');
    const sky = g.createLinearGradient(0, 0, 0, 480);
    sky.addColorStop(0, '#9cc9ef');
    sky.addColorStop(1, '#e8f1f8');
    g.fillStyle = sky;
    g.fillRect(0, 0, 640, 480);
    g.fillStyle = '#4d7c3a';
    g.beginPath();
    g.moveTo(0, 330);
    g.lineTo(160, 210);
    g.lineTo(300, 300);
    g.lineTo(460, 170);
    g.lineTo(640, 290);
    g.lineTo(640, 480);
    g.lineTo(0, 480);
    g.fill();
    g.fillStyle = '#8a7f70';
    g.fillRect(380, 330, 200, 110);
    g.fillStyle = '#1f2937';
    g.font = '28px sans-serif';
    g.fillText('forestry 19', 24, 450);
    return c.toDataURL('image/jpeg', 0.85).split(',')[1] ?? '';
  });
  const plain = Buffer.from(b64, 'base64');
  // The capture time: now, on the county's calendar (UTC+8).
  const local = new Date(Date.now() + 8 * 3600_000).toISOString();
  const when = `${local.slice(0, 10).replace(/-/g, ':')} ${local.slice(11, 19)}`;
  const tiff = exifBlock(EXIF_AT.lat, EXIF_AT.lon, when, '+08:00');
  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
  const app1 = Buffer.alloc(4);
  app1.writeUInt16BE(0xffe1, 0);
  app1.writeUInt16BE(payload.length + 2, 2);
  return Buffer.concat([plain.subarray(0, 2), app1, payload, plain.subarray(2)]);
}

// ───────────── the test ─────────────

beforeAll(async () => {
  server = await YanshouServer.start();
  const town = await server.api<{ id: string }>('POST', '/townships', { name: '镇渡乡', kind: 'town' });
  const mine = await server.api<{ id: string }>('POST', '/mines', {
    name: MINE,
    licence_no: `C36092320100571300${Math.floor(Math.random() * 9000 + 1000)}`,
    holder: '上高县青龙山石业有限公司',
    township_id: town.id,
    mineral: '石灰岩',
    mining_method: '露天开采',
    boundary: { format: 'lat_lon', datum: 'wgs84', points: '28.230,114.900\n28.240,114.900\n28.240,114.910\n28.230,114.910' },
  });
  for (const t of [{ transition: 'propose', disposition: 'cancel' }, { transition: 'approve' }]) {
    await server.api('POST', `/mines/${mine.id}/transitions`, t);
  }
  roundId = (await server.api<{ id: string }>('POST', `/mines/${mine.id}/rounds`)).id;
  await server.addUser(INSPECTOR, '周林业', 'department_inspector', 'forestry');
  browser = await launchBrowser();
  phone = await newPhone(browser);
  await phone.context.grantPermissions(['geolocation'], { origin: server.base });
  await phone.context.setGeolocation(PHONE_AT);
  jpeg = await makeJpeg(phone.page);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

function card(page: Page) {
  return page.locator(`${tid(`photos-${FIELD}`)} ${tid('photo-card')}`);
}

async function toItem(page: Page): Promise<void> {
  await page.locator(tid('item-19')).scrollIntoViewIfNeeded();
  await page.evaluate(() => {
    document.querySelector('[data-testid="item-19"]')?.scrollIntoView({ block: 'start' });
  });
}

describe('a photo taken offline', () => {
  test('the item asks for a photo; taken with no signal, it is on the item with its thumbnail, 待上传', async () => {
    const { page, context } = phone;
    await loginUi(page, server.base, INSPECTOR);
    await waitControlled(page);
    await page.locator(tid('mine-item'), { hasText: MINE }).click();
    await page.locator(tid('record-item')).first().click();
    await page.locator(tid('item-19')).waitFor();
    await expect.poll(() => page.locator(tid(`photos-${FIELD}`)).locator(tid('photo-prompt')).count()).toBe(1);

    await context.setOffline(true);
    await until('the app to notice it is offline', async () =>
      ((await page.locator(tid('sync-state')).textContent()) ?? '').includes('离线'),
    );
    await page
      .locator(tid(`photo-input-camera-${FIELD}`))
      .setInputFiles({ name: 'IMG_20240302_102030.jpg', mimeType: 'image/jpeg', buffer: jpeg });
    await expect.poll(() => card(page).count()).toBe(1);
    expect(await card(page).getAttribute('data-sha256')).toBe(createHash('sha256').update(jpeg).digest('hex'));
    await expect.poll(() => card(page).locator(tid('photo-state')).textContent()).toBe('待上传');
    // The thumbnail is drawn from the bytes on the phone.
    await expect
      .poll(() => card(page).locator('img').evaluate((img: HTMLImageElement) => img.naturalWidth))
      .toBeGreaterThan(0);
    await expect.poll(() => page.locator(tid('record-photos-pending')).textContent()).toContain('1 张未上传');
    expect(await page.locator(tid('sync-state')).textContent()).toContain('1 张照片待上传');
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'photos-00-offline-record');
    await toItem(page);
    await shot(page, 'photos-01-offline-taken');
    // Tapped, it opens full screen from the original on the phone.
    await card(page).locator(tid('photo-thumb')).click();
    const preview = page.locator('.van-image-preview img');
    await expect.poll(() => preview.evaluate((img: HTMLImageElement) => img.naturalWidth).catch(() => 0)).toBe(640);
    await expect.poll(() => page.locator('[class*="van-fade-enter"]').count()).toBe(0);
    await shot(page, 'photos-01b-offline-preview');
    await page.locator('.van-image-preview__close-icon').click();
    await expect.poll(() => page.locator('.van-image-preview').isVisible()).toBe(false);
  });

  test('a reload with no network keeps it', async () => {
    const { page } = phone;
    const nav = await page.reload();
    expect(nav?.fromServiceWorker()).toBe(true);
    await page.locator(tid('item-19')).waitFor();
    await expect.poll(() => card(page).count()).toBe(1);
    await expect
      .poll(() => card(page).locator('img').evaluate((img: HTMLImageElement) => img.naturalWidth))
      .toBeGreaterThan(0);
    expect(await card(page).locator(tid('photo-state')).textContent()).toBe('待上传');
    await toItem(page);
    await shot(page, 'photos-02-offline-reloaded');

    // 待处理 and 同步与设置 count it; the list leads back to the record.
    await page.locator(tid('tab-settings')).click();
    await expect.poll(() => page.locator(`${tid('pending-uploads')} .van-cell__value`).textContent()).toBe('1');
    await page.locator(tid('tab-todo')).click();
    await expect.poll(() => page.locator(tid('todo-upload')).count()).toBe(1);
    expect(await page.locator(tid('todo-upload')).textContent()).toContain(MINE);
    await shot(page, 'photos-02b-offline-todo');
    await page.locator(tid('todo-upload')).click();
    await expect.poll(() => card(page).count()).toBe(1);
  });

  test('online, it uploads, and the server findings arrive: where and when, for the file and the phone', async () => {
    const { page, context } = phone;
    await context.setOffline(false);
    await syncUi(page);
    const uploaded = until(
      'the photo to be uploaded and its findings to arrive',
      async () => {
        const state = (await card(page).locator(tid('photo-state')).textContent()) ?? '';
        const findings = (await card(page).locator(tid('photo-findings')).textContent().catch(() => '')) ?? '';
        if (state === '已上传' && findings.includes('在矿区范围内') && !findings.includes('上传后判定')) return true;
        if (state.includes('被拒绝')) throw new Error(`refused: ${await card(page).textContent()}`);
        if (!state.includes('上传中')) await page.locator(tid('sync-now')).first().click();
        return false;
      },
      60_000,
      500,
    );
    await uploaded.catch(async (e: unknown) => {
      await toItem(page);
      await shot(page, 'photos-03-online-failed');
      throw e;
    });
    const cell = (id: string) => card(page).locator(tid(id)).textContent();
    expect(await cell('finding-exif-location')).toBe('在矿区范围内');
    expect(await cell('finding-phone-location')).toBe('在矿区范围内');
    expect(await cell('finding-exif-time')).toBe('当天');
    expect(await cell('finding-phone-time')).toBe('当天');
    // The camera's fix and the phone's are 44 m apart with 10 m accuracy: said plainly.
    expect(await card(page).locator(tid('photo-disagree')).textContent()).toContain('相差');
    await expect.poll(() => page.locator(tid('record-photos-pending')).count()).toBe(0);
    await toItem(page);
    await shot(page, 'photos-03-online-uploaded');

    // The server holds the photo on the record, byte for byte.
    const sha = createHash('sha256').update(jpeg).digest('hex');
    const listed = JSON.stringify(await server.api('GET', `/rounds/${roundId}/photos`));
    expect(listed).toContain(sha);
    const res = await fetch(`${server.base}/api/v1/photos/${sha}`, {
      headers: { authorization: `Bearer ${server.adminToken}` },
    });
    expect(Buffer.from(await res.arrayBuffer()).equals(jpeg)).toBe(true);

    await page.locator(tid('tab-settings')).click();
    await expect.poll(() => page.locator(`${tid('pending-uploads')} .van-cell__value`).textContent()).toBe('0');
    expect(phone.errors.filter((e) => !e.includes('Failed to load resource')), phone.errors.join('\n')).toEqual([]);
  });

  test('a 12-megapixel photo: measured from choosing the file to its card, and its upload', async () => {
    const { page } = phone;
    await page.locator(tid('tab-mines')).click();
    await page.locator(tid('mine-item'), { hasText: MINE }).click();
    await page.locator(tid('record-item')).first().click();
    const field = 'forestry/20.photos';
    await page.locator(tid(`photos-${field}`)).waitFor();
    // 4000 × 3000 of noise over a gradient: a JPEG the size a phone camera makes.
    const b64 = await page.evaluate(() => {
      const c = document.createElement('canvas');
      c.width = 4000;
      c.height = 3000;
      const g = c.getContext('2d');
      if (!g) throw new Error('no 2d context');
      const img = g.createImageData(4000, 3000);
      let x = 12345;
      for (let i = 0; i < img.data.length; i += 4) {
        x = (x * 1103515245 + 12345) & 0x7fffffff;
        const n = x & 0x3f;
        img.data[i] = 60 + n + ((i >> 12) & 0x3f);
        img.data[i + 1] = 110 + n;
        img.data[i + 2] = 70 + (n >> 1);
        img.data[i + 3] = 255;
      }
      g.putImageData(img, 0, 0);
      return c.toDataURL('image/jpeg', 0.9).split(',')[1] ?? '';
    });
    const big = Buffer.from(b64, 'base64');
    const cards = page.locator(`${tid(`photos-${field}`)} ${tid('photo-card')}`);
    const t0 = Date.now();
    await page.locator(tid(`photo-input-album-${field}`)).setInputFiles({ name: 'big.jpg', mimeType: 'image/jpeg', buffer: big });
    await expect
      .poll(() => cards.locator('img').evaluate((img: HTMLImageElement) => img.naturalWidth).catch(() => 0), { timeout: 30_000 })
      .toBeGreaterThan(0);
    const captureMs = Date.now() - t0;
    const t1 = Date.now();
    await until(
      'the big photo to upload',
      async () => {
        const state = (await cards.locator(tid('photo-state')).textContent()) ?? '';
        if (state.includes('被拒绝')) throw new Error(state);
        return state === '已上传';
      },
      120_000,
      100,
    );
    const uploadMs = Date.now() - t1;
    recordBudget('photo_12mp', {
      bytes: big.length,
      capture_to_card_ms: captureMs,
      upload_from_card_ms: uploadMs,
      note: 'capture = read, check, SHA-256, sign, thumbnail, one IndexedDB transaction; upload includes the sync delay (3 s after an edit) and 1 MiB chunks over loopback',
    });
    expect(captureMs).toBeLessThan(15_000);
  });

  test('a file the server refuses is marked with its reason and does not hold back the next', async () => {
    const { page } = phone;
    const field = 'forestry/21.photos';
    const cards = page.locator(`${tid(`photos-${field}`)} ${tid('photo-card')}`);
    // A JPEG cut short: its first bytes say JPEG (the phone takes it), the server cannot decode it.
    const cut = jpeg.subarray(0, Math.floor(jpeg.length / 2));
    const other = await makeJpeg(page);
    await page.locator(tid(`photo-input-album-${field}`)).setInputFiles([
      { name: 'cut.jpg', mimeType: 'image/jpeg', buffer: cut },
    ]);
    await expect.poll(() => cards.count()).toBe(1);
    await page.locator(tid(`photo-input-album-${field}`)).setInputFiles([
      { name: 'other.jpg', mimeType: 'image/jpeg', buffer: other },
    ]);
    await expect.poll(() => cards.count()).toBe(2);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const cardOf = (b: Buffer) => page.locator(`${tid('photo-card')}[data-sha256="${sha(b)}"]`);
    await until(
      'one refused, the other uploaded',
      async () =>
        (await cardOf(cut).locator(tid('photo-state')).textContent()) === '被拒绝' &&
        (await cardOf(other).locator(tid('photo-state')).textContent()) === '已上传',
      60_000,
      200,
    );
    expect(await cardOf(cut).locator(tid('photo-note')).textContent()).toContain('服务器拒收此照片');
    await expect.poll(() => page.locator(`${tid('tab-todo')} .van-badge`).textContent()).toBe('1');
    await page.locator(tid('item-21')).scrollIntoViewIfNeeded();
    await page.evaluate(() => document.querySelector('[data-testid="item-21"]')?.scrollIntoView({ block: 'start' }));
    await shot(page, 'photos-04-refused');
  });
});
