/**
 * Two 水利 inspectors measure the same ditch with no signal and write different lengths. After
 * they sync, both phones show the conflict with both values side by side (who wrote each); one
 * inspector picks a value with a reason, and both phones converge on it.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import {
  launchBrowser,
  loginUi,
  newPhone,
  outboxCount,
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
let wang: Phone;
let li: Phone;

const LENGTH = 'water_resources/14.length';

beforeAll(async () => {
  server = await YanshouServer.start();
  seed = await server.seed();
  browser = await launchBrowser();
  wang = await newPhone(browser);
  li = await newPhone(browser);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

async function openRecord(page: Page): Promise<void> {
  await page.locator(tid('tab-mines')).click();
  await page.locator(tid('mine-item'), { hasText: seed.mineName }).click();
  await page.locator(tid('record-item')).first().click();
  await page.locator(tid('section-water_resources')).waitFor();
}

async function setLength(page: Page, value: string): Promise<void> {
  const input = page.locator(`${tid(`field-${LENGTH}`)} input`);
  await input.fill(value);
  await input.blur();
}

test('concurrent offline edits of one field become a conflict both phones show, and one resolution settles it', async () => {
  for (const [phone, user] of [
    [wang, seed.users.water1],
    [li, seed.users.water2],
  ] as const) {
    await loginUi(phone.page, server.base, user);
    await waitControlled(phone.page);
    await openRecord(phone.page);
    await syncUi(phone.page);
  }

  // At the mine, no signal: each measures the ditch.
  await wang.context.setOffline(true);
  await li.context.setOffline(true);
  await setLength(wang.page, '120');
  await setLength(li.page, '135.5');
  await expect.poll(() => outboxCount(wang.page)).toBe(1);
  await expect.poll(() => outboxCount(li.page)).toBe(1);

  // Back in signal: both sync twice, so each pulls what the other pushed.
  await wang.context.setOffline(false);
  await li.context.setOffline(false);
  for (let i = 0; i < 2; i++) {
    await syncUi(wang.page);
    await syncUi(li.page);
  }

  for (const phone of [wang, li]) {
    const field = phone.page.locator(tid(`item-14`));
    const card = field.locator(tid('conflict-card'));
    await expect.poll(() => card.count()).toBe(1);
    const candidates = card.locator(tid('conflict-candidate'));
    await expect.poll(() => candidates.count()).toBe(2);
    const texts = (await candidates.allInnerTexts()).join('\n');
    expect(texts).toContain('120');
    expect(texts).toContain('135.5');
    // Who wrote each value.
    expect(texts).toContain('王水利');
    expect(texts).toContain('李水利');
    // The field cannot be overwritten while it is in conflict.
    expect(await phone.page.locator(`${tid(`field-${LENGTH}`)} input`).isDisabled()).toBe(true);
    await card.scrollIntoViewIfNeeded();
  }
  await shot(wang.page, '09-conflict');

  // 王 re-measured: 李's value is right.
  const card = wang.page.locator(tid('item-14')).locator(tid('conflict-card'));
  await card.locator(tid('conflict-candidate'), { hasText: '135.5' }).locator('.van-radio').click();
  await card.locator(`${tid('conflict-reason')} textarea`).fill('现场复核，以李水利的测量为准');
  await card.locator(tid('conflict-resolve')).click();
  await expect.poll(() => card.count()).toBe(0);
  await syncUi(wang.page);
  await syncUi(li.page);

  for (const phone of [wang, li]) {
    await expect.poll(() => phone.page.locator(tid('item-14')).locator(tid('conflict-card')).count()).toBe(0);
    await expect.poll(() => phone.page.locator(`${tid(`field-${LENGTH}`)} input`).inputValue()).toBe('135.5');
    expect(await phone.page.locator(`${tid(`field-${LENGTH}`)} input`).isDisabled()).toBe(false);
    expect(await outboxCount(phone.page)).toBe(0);
  }
  await shot(li.page, '10-conflict-resolved');

  // The server agrees: no conflict left on the record.
  const round = await server.api<{ conflicts: string[] }>('GET', `/rounds/${seed.roundId}`);
  expect(round.conflicts).toEqual([]);
  for (const phone of [wang, li]) expect(phone.errors, phone.errors.join('\n')).toEqual([]);
});
