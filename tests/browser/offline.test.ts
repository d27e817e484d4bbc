/**
 * An inspector's day: logs in at the office (online), fills the 水利 section at the mine with no
 * signal, reloads the app there, comes back online and syncs; a 林业 colleague then sees the
 * values read-only.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  launchBrowser,
  loginUi,
  newPhone,
  outboxCount,
  radio,
  shot,
  syncUi,
  tid,
  until,
  waitControlled,
  YanshouServer,
  type Phone,
  type Seed,
} from './harness';

let server: YanshouServer;
let seed: Seed;
let browser: Browser;
let water: Phone;

const RESULT_14 = 'field-water_resources/14.result';
const LENGTH_14 = 'field-water_resources/14.length';
const COUNT_15 = 'field-water_resources/15.count';
const RESULT_17 = 'field-water_resources/17.result';

beforeAll(async () => {
  server = await YanshouServer.start();
  seed = await server.seed();
  browser = await launchBrowser();
  water = await newPhone(browser);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe('an inspector offline', () => {
  test('logs in online, sees the mine and the record: own section editable, others read-only', async () => {
    const { page } = water;
    await loginUi(page, server.base, seed.users.water1);
    const mine = page.locator(tid('mine-item'), { hasText: seed.mineName });
    await expect.poll(() => mine.count()).toBe(1);
    await waitControlled(page);
    await shot(page, '01-mines');

    await mine.click();
    await page.locator(tid('record-item')).first().waitFor();
    await shot(page, '02-mine');
    await page.locator(tid('record-item')).first().click();

    const waterSection = page.locator(tid('section-water_resources'));
    const forestSection = page.locator(tid('section-forestry'));
    await waterSection.waitFor();
    await expect.poll(() => waterSection.locator('.van-tag', { hasText: '我填写' }).count()).toBe(1);
    await expect.poll(() => forestSection.locator('.van-tag', { hasText: '只读' }).count()).toBe(1);
    // The own section is open with inputs; the forestry section offers none.
    await page.locator(tid(RESULT_14)).waitFor();
    await forestSection.locator('.van-collapse-item__title').click();
    await forestSection.locator(tid('item-19')).waitFor();
    expect(await forestSection.locator('input, textarea, [role="radio"]').count()).toBe(0);
    await forestSection.locator('.van-collapse-item__title').click();
    // Everything the template says is rendered as words (e.g. 验收方式 现场查看、实测).
    expect(await page.locator('body').innerText()).not.toContain('[object');
    await expect.poll(() => page.locator(tid('item-14')).innerText()).toContain('现场查看、实测');
    await page.locator(tid('section-water_resources')).scrollIntoViewIfNeeded();
    await shot(page, '03-record');
    expect(water.errors, water.errors.join('\n')).toEqual([]);
  });

  test('fills the section offline and keeps it over a reload with no network', async () => {
    const { page, context } = water;
    await context.setOffline(true);
    await until('the app to notice it is offline', async () =>
      ((await page.locator(tid('sync-state')).textContent()) ?? '').includes('离线'),
    );

    await radio(page, RESULT_14, '达标').click();
    await page.locator(`${tid(LENGTH_14)} input`).fill('125.5');
    await page.locator(`${tid(LENGTH_14)} input`).blur();
    await page.locator(`${tid(COUNT_15)} input`).fill('3');
    await page.locator(`${tid(COUNT_15)} input`).blur();
    await radio(page, RESULT_17, '不达标').click();
    await expect.poll(() => outboxCount(page)).toBe(4);
    await expect.poll(() => page.locator(tid('pending-tag')).count()).toBe(4);
    await shot(page, '04-record-offline-filled');

    // A reload with no network: the service worker starts the app, IndexedDB has the values.
    const nav = await page.reload();
    expect(nav?.fromServiceWorker(), 'the reload was answered by the service worker').toBe(true);
    await page.locator(tid(RESULT_14)).waitFor();
    await expect
      .poll(() => radio(page, RESULT_14, '达标').getAttribute('aria-checked'))
      .toBe('true');
    await expect
      .poll(() => radio(page, RESULT_17, '不达标').getAttribute('aria-checked'))
      .toBe('true');
    expect(await page.locator(`${tid(LENGTH_14)} input`).inputValue()).toBe('125.5');
    expect(await page.locator(`${tid(COUNT_15)} input`).inputValue()).toBe('3');
    expect(await page.locator(tid('sync-state')).textContent()).toContain('4 项待同步');
    await shot(page, '05-record-after-offline-reload');

    await page.locator(tid('tab-settings')).click();
    await expect.poll(() => page.locator(`${tid('pending-count')} .van-cell__value`).textContent()).toBe('4');
    await shot(page, '06-settings-pending');
  });

  test('back online, the edits sync and another department sees them read-only', async () => {
    const { page, context } = water;
    await context.setOffline(false);
    // Coming back online syncs by itself; tap 同步 too, as an inspector would.
    await syncUi(page);
    await expect.poll(() => page.locator(`${tid('pending-count')} .van-cell__value`).textContent()).toBe('0');
    expect(await outboxCount(page)).toBe(0);
    await shot(page, '07-settings-synced');

    // The server has them: by its verdict, item 14 (达标) passes and item 17 (不达标) fails.
    const round = await server.api<{ verdict: { failing: { field_key: string }[] } }>(
      'GET',
      `/rounds/${seed.roundId}`,
    );
    const failing = round.verdict.failing.map((p) => p.field_key);
    expect(failing).toContain('water_resources/17.result');
    expect(failing).not.toContain('water_resources/14.result');

    // A forestry inspector's phone sees the water values, read-only.
    const forest = await newPhone(browser);
    try {
      await loginUi(forest.page, server.base, seed.users.forest);
      await forest.page.locator(tid('mine-item'), { hasText: seed.mineName }).click();
      await forest.page.locator(tid('record-item')).first().click();
      const section = forest.page.locator(tid('section-water_resources'));
      await section.waitFor();
      await expect.poll(() => section.locator('.van-tag', { hasText: '只读' }).count()).toBe(1);
      await section.locator('.van-collapse-item__title').click();
      await expect
        .poll(() => section.locator(tid('value-water_resources/14.length')).textContent())
        .toContain('125.5');
      expect(await section.locator(tid('value-water_resources/14.result')).textContent()).toContain('达标');
      expect(await section.locator(tid('value-water_resources/17.result')).textContent()).toContain('不达标');
      expect(await section.locator(tid('value-water_resources/15.count')).textContent()).toContain('3');
      expect(await section.locator('input, textarea, [role="radio"]').count()).toBe(0);
      await shot(forest.page, '08-forestry-sees-water');
      expect(forest.errors, forest.errors.join("\n")).toEqual([]);
    } finally {
      await forest.context.close();
    }
  });
});
