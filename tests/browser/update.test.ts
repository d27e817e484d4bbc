/**
 * A new version of the app is published while an inspector has unsynced edits: the app offers
 * the update and waits (a reload does not switch versions behind the user's back); taking it
 * reloads into the new version with the outbox intact, and the edits then sync.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import {
  launchBrowser,
  loginUi,
  newPhone,
  outboxCount,
  radio,
  shot,
  syncUi,
  tid,
  waitControlled,
  YanshouServer,
  type Phone,
  type Seed,
} from './harness';

let server: YanshouServer;
let seed: Seed;
let browser: Browser;
let phone: Phone;

beforeAll(async () => {
  server = await YanshouServer.start();
  seed = await server.seed();
  browser = await launchBrowser();
  phone = await newPhone(browser);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

/**
 * Build B: index.html marked, and the service worker's version changed as the build changes it
 * when any file changes (the precache list stays the same files).
 */
function publishBuildB(webDir: string): string {
  const indexPath = join(webDir, 'index.html');
  const index = readFileSync(indexPath, 'utf8');
  writeFileSync(indexPath, index.replace('<head>', '<head>\n    <meta name="yanshou-build" content="B" />'));
  const swPath = join(webDir, 'sw.js');
  const sw = readFileSync(swPath, 'utf8');
  const versions = sw.match(/"[0-9a-f]{16}"/g) ?? [];
  if (versions.length !== 1 || !versions[0]) throw new Error(`expected one build version in sw.js, found ${versions.length}`);
  const next = `"${createHash('sha256').update(versions[0] + 'B').digest('hex').slice(0, 16)}"`;
  writeFileSync(swPath, sw.replace(versions[0], next));
  return next.slice(1, -1);
}

const buildMark = (page: Page) =>
  page.evaluate(() => document.querySelector('meta[name="yanshou-build"]')?.getAttribute('content') ?? 'A');

test('an update waits for the user and keeps the queued edits', async () => {
  const { page } = phone;
  await loginUi(page, server.base, seed.users.water1);
  await waitControlled(page);
  await page.locator(tid('mine-item'), { hasText: seed.mineName }).click();
  await page.locator(tid('record-item')).first().click();
  await page.locator(tid('field-water_resources/14.result')).waitFor();

  // The county's server does not take syncs for now (e.g. being upgraded): edits queue up.
  await page.route('**/api/v1/sync', (route) => route.fulfill({ status: 503, body: '' }));
  await radio(page, 'field-water_resources/14.result', '达标').click();
  await radio(page, 'field-water_resources/16.result', '不达标').click();
  await expect.poll(() => outboxCount(page)).toBe(2);

  const version = publishBuildB(server.webDir);
  await page.evaluate(async () => {
    const reg = await navigator.serviceWorker.getRegistration();
    await reg?.update();
  });
  const banner = page.locator(tid('update-banner'));
  await banner.waitFor({ timeout: 30_000 });
  expect(await buildMark(page)).toBe('A');
  expect(await outboxCount(page)).toBe(2);
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, '11-update-offered');

  // A reload is not a yes: the old version keeps running, the offer stays.
  await page.reload();
  await banner.waitFor({ timeout: 30_000 });
  expect(await buildMark(page)).toBe('A');
  await expect.poll(() => page.locator(tid('pending-tag')).count()).toBe(2);

  // The user taps it: the new worker takes over and the page reloads into build B.
  const reloaded = page.waitForEvent('load', { timeout: 30_000 });
  await banner.click();
  await reloaded;
  await expect.poll(() => buildMark(page), { timeout: 30_000 }).toBe('B');
  await expect.poll(() => banner.count()).toBe(0);
  expect(await outboxCount(page)).toBe(2);
  await expect
    .poll(() => radio(page, 'field-water_resources/16.result', '不达标').getAttribute('aria-checked'))
    .toBe('true');
  // Only the new version's cache is left.
  expect(await page.evaluate(() => caches.keys())).toEqual([`yanshou-${version}`]);
  await shot(page, '12-updated');

  // The server takes syncs again: the edits made under the old version arrive.
  await page.unroute('**/api/v1/sync');
  await syncUi(page);
  expect(await outboxCount(page)).toBe(0);
  const round = await server.api<{ verdict: { failing: { field_key: string }[] } }>('GET', `/rounds/${seed.roundId}`);
  const failing = round.verdict.failing.map((p) => p.field_key);
  expect(failing).toContain('water_resources/16.result');
  expect(failing).not.toContain('water_resources/14.result');
  expect(phone.errors.filter((e) => !e.includes('503')), phone.errors.join('\n')).toEqual([]);
});
