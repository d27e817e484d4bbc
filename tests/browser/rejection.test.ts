/**
 * What the server refuses comes back to the phone and is shown where it happened, with the
 * reason; what the server would refuse anyway is refused as it is typed.
 */
import type { Browser } from 'playwright-core';
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
  await loginUi(phone.page, server.base, seed.users.water1);
  await waitControlled(phone.page);
  await phone.page.locator(tid('mine-item'), { hasText: seed.mineName }).click();
  await phone.page.locator(tid('record-item')).first().click();
  await phone.page.locator(tid('section-water_resources')).waitFor();
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

test('a number with more digits than the server takes is refused as it is typed, and nothing is queued', async () => {
  const { page } = phone;
  const field = tid('field-water_resources/14.length');
  await page.locator(`${field} input`).fill('12.3456789012');
  await page.locator(`${field} input`).blur();
  await expect.poll(() => page.locator(`${field} .van-field__error-message`).textContent()).toContain('位数太多');
  expect(await outboxCount(page)).toBe(0);
  // What was typed stays there to be corrected.
  expect(await page.locator(`${field} input`).inputValue()).toBe('12.3456789012');
  await page.locator(`${field} input`).fill('12.35');
  await page.locator(`${field} input`).blur();
  await expect.poll(() => outboxCount(page)).toBe(1);
  await syncUi(page);
  expect(await outboxCount(page)).toBe(0);
});

test('an edit the server refuses (the county withdrew the record meanwhile) is shown on the record with its reason', async () => {
  const { page, context } = phone;
  await context.setOffline(true);
  await radio(page, 'field-water_resources/17.result', '达标').click();
  await expect.poll(() => outboxCount(page)).toBe(1);

  // Meanwhile the county office withdraws the round's record (opened by mistake).
  const results = await server.pushAs('admin', [{ entity: seed.roundId, kind: 'tombstone' }]);
  expect(results.map((r) => r.status)).toEqual(['applied']);

  await context.setOffline(false);
  await syncUi(page);
  expect(await outboxCount(page)).toBe(0);
  const card = page.locator(tid('record-rejections')).locator(tid('rejection-card'));
  await expect.poll(() => card.count()).toBe(1);
  const text = await card.innerText();
  // The item in words, not the field key; the reason in Chinese.
  expect(text).toContain('水利局 第17项');
  expect(text).toContain('结果');
  expect(text).not.toContain('water_resources/17.result');
  expect(text).toContain('记录已被删除');
  // A withdrawn record says so and takes no more input.
  await expect.poll(() => page.locator(tid('record-withdrawn')).count()).toBe(1);
  expect(await page.locator(tid('field-water_resources/17.result')).count()).toBe(0);
  await card.scrollIntoViewIfNeeded();
  await shot(page, '13-rejection-on-record');

  // It waits on the 待处理 tab too, until the inspector has seen it.
  await page.locator(tid('tab-todo')).click();
  await expect.poll(() => page.locator(tid('rejection-card')).count()).toBe(1);
  await page.locator(tid('rejection-dismiss')).click();
  await expect.poll(() => page.locator(tid('rejection-card')).count()).toBe(0);
  expect(phone.errors, phone.errors.join('\n')).toEqual([]);
});
