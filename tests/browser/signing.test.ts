/**
 * Signing on the phone (PROTOCOL.md §12, §14, §15) against the real server:
 *
 * - a 林业 inspector fills the forestry section at the mine with no signal, signs it on the pad
 *   (drawn with the mouse), sees 已签字（待同步）; back online the handwriting uploads first, the
 *   signature follows, and the server's assembled record says the signature holds;
 * - the inspector withdraws the signature with a reason, edits, and signs again;
 * - an expert on the panel of a drafted opinion letter (drafted and issued over the API by the
 *   county office) signs it offline, then online; once issued the letter says 已出具.
 *
 * Screenshots at 360 × 780: the pad, a signed section, the letter.
 */
import { createHash } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  idbAll,
  launchBrowser,
  loginUi,
  newPhone,
  outboxCount,
  PASSWORD,
  radio,
  shot,
  syncUi,
  tid,
  until,
  uuid,
  waitControlled,
  YanshouServer,
  type Phone,
  type Seed,
} from './harness';

const INSPECTOR = 'linye.sign';
const SECTION = 'forestry';

let server: YanshouServer;
let seed: Seed;
let browser: Browser;
let phone: Phone;

beforeAll(async () => {
  server = await YanshouServer.start();
  seed = await server.seed();
  await server.addUser(INSPECTOR, '孙林业', 'department_inspector', SECTION);
  browser = await launchBrowser();
  phone = await newPhone(browser);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

interface RecordDoc {
  sections: {
    department: string;
    signature: null | { signer: { user: string; name: string }; hash_holds: boolean; signature_valid: boolean; strokes: { sha256: string; size: number } };
  }[];
}

async function serverSignature(roundId: string) {
  const doc = await server.api<RecordDoc>('GET', `/rounds/${roundId}/record`);
  return doc.sections.find((s) => s.department === SECTION)?.signature ?? null;
}

async function goOffline(page: Page, offline: boolean): Promise<void> {
  await phone.context.setOffline(offline);
  if (offline) {
    await until('the app to notice it is offline', async () =>
      ((await page.locator(tid('sync-state')).textContent()) ?? '').includes('离线'),
    );
  }
}

async function fillNumber(page: Page, field: string, value: string): Promise<void> {
  const input = page.locator(`${tid(`field-${field}`)} input`);
  await input.fill(value);
  await input.blur();
}

/** Draws a signature-like scribble across the pad with the mouse. */
async function draw(page: Page): Promise<void> {
  const canvas = page.locator(`${tid('sign-pad-canvas')}[data-ready="yes"]`);
  await canvas.waitFor();
  // The sheet slides up: draw once it stands still.
  await expect.poll(() => page.locator('[class*="van-popup-slide-bottom"]').count()).toBe(0);
  const box = await canvas.boundingBox();
  if (!box) throw new Error('the pad has no box');
  const at = (fx: number, fy: number) => [box.x + box.width * fx, box.y + box.height * fy] as const;
  const stroke = async (points: [number, number][]) => {
    const [x0, y0] = at(...(points[0] ?? [0.1, 0.5]));
    await page.mouse.move(x0, y0);
    await page.mouse.down();
    for (const p of points.slice(1)) {
      const [x, y] = at(...p);
      await page.mouse.move(x, y, { steps: 6 });
    }
    await page.mouse.up();
  };
  await stroke([[0.1, 0.6], [0.18, 0.25], [0.24, 0.7], [0.32, 0.3], [0.4, 0.65]]);
  await stroke([[0.48, 0.35], [0.6, 0.4], [0.55, 0.75], [0.7, 0.5], [0.88, 0.45]]);
}

function block(page: Page) {
  return page.locator(tid(`sign-block-${SECTION}`));
}

async function openRecord(page: Page): Promise<void> {
  await page.locator(tid('mine-item'), { hasText: seed.mineName }).click();
  await page.locator(tid('record-item')).first().click();
  await page.locator(tid(`section-${SECTION}`)).waitFor();
}

async function signOnPad(page: Page, shotName?: string): Promise<void> {
  await block(page).locator(tid('sign-open')).click();
  await page.locator(tid('sign-pad')).waitFor();
  await expect.poll(() => page.locator(tid('sign-what')).innerText()).toContain('林业');
  await draw(page);
  if (shotName) await shot(page, shotName);
  await page.locator(tid('sign-pad-confirm')).click();
  await expect.poll(() => page.locator(tid('sign-pad')).count()).toBe(0);
}

describe('a section signed on the phone', () => {
  test('filled and signed with no signal: 已签字（待同步）, the handwriting kept on the phone', async () => {
    const { page } = phone;
    await loginUi(page, server.base, INSPECTOR);
    await waitControlled(page);
    await openRecord(page);
    await goOffline(page, true);

    // Not yet: every deciding answer is missing, and the button says which.
    await block(page).scrollIntoViewIfNeeded();
    expect(await block(page).locator(tid('sign-open')).isDisabled()).toBe(true);
    await expect.poll(() => block(page).locator(tid('sign-blocked')).innerText()).toContain('第 19、20、21、22 项');

    await fillNumber(page, `${SECTION}/19.coverage`, '86');
    await fillNumber(page, `${SECTION}/20.survival_rate`, '91');
    await radio(page, `field-${SECTION}/21.result`, '达标').click();
    await expect.poll(() => block(page).locator(tid('sign-blocked')).innerText()).toContain('第 22 项');
    await radio(page, `field-${SECTION}/22.result`, '达标').click();
    await expect.poll(() => block(page).locator(tid('sign-open')).isDisabled()).toBe(false);

    await signOnPad(page, 'signing-01-pad');
    await expect.poll(() => block(page).locator(tid('sign-state')).innerText()).toBe('已签字（待同步）');
    await expect.poll(() => block(page).locator(tid('sign-signer')).innerText()).toContain('孙林业');
    await expect.poll(() => block(page).locator(`${tid('strokes-image')} path`).getAttribute('d')).toMatch(/^M\d+ \d+L/);
    // Signed, the section is frozen: no inputs left in it.
    expect(await page.locator(tid(`section-${SECTION}`)).locator('input, [role="radio"]').count()).toBe(0);
    await block(page).scrollIntoViewIfNeeded();
    await shot(page, 'signing-02-signed-offline');

    const strokes = await idbAll<{ state: string; size: number }>(page, 'strokes');
    expect(strokes.map((s) => s.state)).toEqual(['pending']);
    const outbox = await idbAll<{ op: { kind: string } }>(page, 'outbox');
    expect(outbox.map((o) => o.op.kind).at(-1)).toBe('sign');
    expect(await serverSignature(seed.roundId)).toBeNull();
    expect(phone.errors, phone.errors.join('\n')).toEqual([]);
  });

  test('online: the handwriting uploads, the signature follows, and the server says it holds', async () => {
    const { page } = phone;
    await goOffline(page, false);
    await syncUi(page);
    await until('the outbox to empty', async () => (await outboxCount(page)) === 0, 30_000);
    const strokes = await idbAll<{ sha256: string; state: string; size: number }>(page, 'strokes');
    expect(strokes.map((s) => s.state)).toEqual(['complete']);
    const sig = await serverSignature(seed.roundId);
    expect(sig).toMatchObject({ hash_holds: true, signature_valid: true, signer: { name: '孙林业' } });
    expect(sig?.strokes).toEqual({ sha256: strokes[0]?.sha256, size: strokes[0]?.size });
    await expect.poll(() => block(page).locator(tid('sign-state')).innerText()).toBe('已签字');
    expect(await page.locator(tid('rejection-card')).count()).toBe(0);
    await block(page).scrollIntoViewIfNeeded();
    await shot(page, 'signing-03-signed');
  });

  test('withdrawn with a reason, edited and signed again', async () => {
    const { page } = phone;
    await block(page).locator(tid('sign-withdraw')).click();
    const dialog = page.locator(tid('withdraw-dialog'));
    await dialog.waitFor();
    // The reason is required.
    await dialog.locator('.van-dialog__confirm').click();
    await expect.poll(() => dialog.innerText()).toContain('请填写撤回签字的原因');
    await dialog.locator(`${tid('withdraw-reason')} textarea`).fill('苗木成活率复测为 88%，需更正');
    await shot(page, 'signing-04-withdraw');
    await dialog.locator('.van-dialog__confirm').click();
    await expect.poll(() => dialog.isVisible()).toBe(false);
    await expect.poll(() => block(page).locator(tid('sign-withdrawn-pending')).count()).toBe(1);

    await fillNumber(page, `${SECTION}/20.survival_rate`, '88');
    await signOnPad(page);
    await syncUi(page);
    await until('the outbox to empty', async () => (await outboxCount(page)) === 0, 30_000);
    const sig = await serverSignature(seed.roundId);
    expect(sig).toMatchObject({ hash_holds: true, signature_valid: true });
    await expect.poll(() => block(page).locator(tid('sign-withdrawal')).innerText()).toContain('苗木成活率复测为 88%');
    await expect.poll(() => block(page).locator(tid('sign-state')).innerText()).toBe('已签字');
    await block(page).scrollIntoViewIfNeeded();
    await shot(page, 'signing-05-signed-again');
    expect(phone.errors, phone.errors.join('\n')).toEqual([]);
  });
});

// ───────────── a signature the server refuses ─────────────

describe('a signature made on a section that changed meanwhile', () => {
  test('is refused hash_mismatch, said in words on the record; reviewed and signed again, it holds', async () => {
    const water = await newPhone(browser);
    const { page } = water;
    const W = 'water_resources';
    // The colleague (another 水利 inspector) answers the section online.
    const colleague = await ApiDevice.enrol(seed.users.water2);
    const answers = await passingAnswers(seed.roundId, W);
    const sets = Object.entries(answers).map(([field, value]) => ({ kind: 'set', field, value, base_rev: 0 }));
    expect((await colleague.push(seed.roundId, sets)).every((r) => r.status === 'applied')).toBe(true);

    await loginUi(page, server.base, seed.users.water1);
    await waitControlled(page);
    await page.locator(tid('mine-item'), { hasText: seed.mineName }).click();
    await page.locator(tid('record-item')).first().click();
    const wblock = page.locator(tid(`sign-block-${W}`));
    await expect.poll(() => wblock.locator(tid('sign-open')).isDisabled()).toBe(false);
    await goOfflineOn(water, true);
    await wblock.locator(tid('sign-open')).click();
    await draw(page);
    await page.locator(tid('sign-pad-confirm')).click();
    await expect.poll(() => wblock.locator(tid('sign-state')).innerText()).toBe('已签字（待同步）');

    // Meanwhile the colleague adds a remark to the section: it is no longer what was signed.
    expect(await colleague.push(seed.roundId, [{ kind: 'set', field: `${W}/14.remark`, value: '渠道末端有少量淤积', base_rev: 0 }])).toEqual([
      expect.objectContaining({ status: 'applied' }),
    ]);
    await goOfflineOn(water, false);
    await syncUi(page);
    const card = page.locator(`${tid('record-rejections')} ${tid('rejection-card')}`);
    await expect.poll(() => card.count()).toBe(1);
    const text = await card.innerText();
    expect(text).toContain('签字时看到的内容已被他人修改');
    expect(text).toContain('请打开最新内容重新核对');
    await expect.poll(() => wblock.locator(tid('sign-open')).isDisabled()).toBe(false);
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'signing-11-hash-mismatch');

    // Reviewed (the remark is there now), signed again: it holds.
    await card.locator(tid('rejection-dismiss')).click();
    await wblock.locator(tid('sign-open')).click();
    await draw(page);
    await page.locator(tid('sign-pad-confirm')).click();
    await syncUi(page);
    await until('the outbox to empty', async () => (await outboxCount(page)) === 0, 30_000);
    const doc = await server.api<RecordDoc>('GET', `/rounds/${seed.roundId}/record`);
    expect(doc.sections.find((x) => x.department === W)?.signature).toMatchObject({ hash_holds: true, signature_valid: true });
    await water.context.close();
  });
});

// ───────────── the experts' opinion letter ─────────────

const EXPERTS = [
  { username: 'expert.forestry', name: '钱林业', specialty: 'forestry', title: '高级工程师', employer: '江西省林业科学院' },
  { username: 'expert.hydro', name: '吴水工', specialty: 'hydro_engineering_environmental_geology', title: '正高级工程师', employer: '江西省地质局第九地质大队' },
  { username: 'expert.env', name: '郑环保', specialty: 'environmental_protection', title: '工程师', employer: '宜春市生态环境监测站' },
];

interface LetterDoc {
  letter_id: string;
  status: string;
  letter_hash: string;
  issuable: boolean;
  blocking: string[];
  opinions: { user: string; decision: string; current: boolean; signature_valid: boolean; on_panel: boolean; strokes: { sha256: string; size: number } | null }[];
}

describe('an expert signs the opinion letter', () => {
  let expert: Phone;
  let office = '';
  let letterId = '';
  const ids: string[] = [];

  test('the county office drafts the letter from the passed, fully signed record', async () => {
    await signTheRest(seed.roundId, SECTION);
    const record = await server.api<{ fully_signed: boolean; conclusion: string }>('GET', `/rounds/${seed.roundId}/record`);
    expect(record).toMatchObject({ fully_signed: true, conclusion: 'passed' });
    await server.addUser('office.sign', '周主任', 'county_office');
    office = await server.login('office.sign');
    for (const e of EXPERTS) {
      const u = await server.api<{ id: string }>('POST', '/users', {
        username: e.username,
        display_name: e.name,
        password: PASSWORD,
        role: 'expert',
        specialty: e.specialty,
      });
      ids.push(u.id);
    }
    const letter = await server.api<LetterDoc>(
      'POST',
      `/rounds/${seed.roundId}/letter`,
      {
        number: '上整治验字〔2026〕第7号',
        basis: ['《矿山地质环境保护规定》（国土资源部令第44号）', '《江西省矿山生态修复验收管理办法（试行）》', '经批准的矿山生态修复方案'],
        date: '2026-12-05',
        organiser: '上高县矿山综合整治工作领导小组办公室',
        panel: EXPERTS.map((e, i) => ({ user: ids[i], title: e.title, employer: e.employer })),
        method: '查阅资料、现场踏勘、实地测量，听取矿山企业和乡镇汇报。',
        situation: '大岭石灰岩矿位于泗溪镇，2019 年停产。治理工程于 2025 年完成，削坡 1.2 公顷，覆土复绿 2.1 公顷。',
        opinions: '1. 治理工程按方案完成，边坡稳定，未见地质灾害隐患。\n2. 植被覆盖率 86%，苗木成活率 88%。',
        problems: '部分坡面植被稀疏，建议加强管护，补植乡土树种。',
        conclusion: 'pass',
      },
      office,
    );
    letterId = letter.letter_id;
    expect(letter.status).toBe('draft');
  });

  test('the expert reads it (and the record it was drafted from), signs it offline, then online', async () => {
    expert = await newPhone(browser);
    const { page } = expert;
    await loginUi(page, server.base, 'expert.forestry');
    await waitControlled(page);
    await page.locator(tid('tab-letters')).click();
    const item = page.locator(tid('letter-item'));
    await expect.poll(() => item.count()).toBe(1);
    await expect.poll(() => item.locator(tid('letter-status')).innerText()).toBe('待审阅');
    await item.click();
    await page.locator(tid('letter-text')).waitFor();
    await expect.poll(() => page.locator(tid('letter-conclusion')).innerText()).toContain('同意通过');
    expect(await page.locator(tid('letter-panel')).innerText()).toContain('钱林业');
    await shot(page, 'signing-06-letter');

    // The record it was drafted from, read-only, with the inspector's signature.
    await page.locator(tid('letter-record')).click();
    await page.locator(tid(`section-${SECTION}`)).waitFor();
    await page.locator(tid(`section-${SECTION}`)).locator('.van-collapse-item__title').click();
    await expect.poll(() => block(page).locator(tid('sign-signer')).innerText()).toContain('孙林业');
    expect(await page.locator(tid(`section-${SECTION}`)).locator('input, [role="radio"]').count()).toBe(0);
    expect(await block(page).locator(tid('sign-withdraw')).count()).toBe(0);
    // The section opens with an animation: scroll until its signature stands in view.
    await expect
      .poll(async () => {
        await block(page).scrollIntoViewIfNeeded();
        const b = await block(page).boundingBox();
        return b !== null && b.y >= 0 && b.y + b.height <= 700;
      })
      .toBe(true);
    // The inspector signed on another phone: the handwriting is fetched by its hash and shown.
    await expect.poll(() => block(page).locator(`${tid('strokes-image')} path`).count(), { timeout: 15_000 }).toBe(1);
    await shot(page, 'signing-07-record-as-expert');
    await page.goBack();
    await page.locator(tid('letter-text')).waitFor();

    await goOfflineOn(expert, true);
    await page.locator(tid('letter-sign')).click();
    await draw(page);
    await shot(page, 'signing-08-letter-pad');
    await page.locator(tid('sign-pad-confirm')).click();
    await expect.poll(() => page.locator(tid('letter-state')).innerText()).toBe('已签字');
    await expect.poll(() => page.locator(tid('letter-pending')).count()).toBe(1);
    await expect.poll(() => page.locator(`${tid('letter-word')} ${tid('strokes-image')}`).count()).toBe(1);
    expect(await page.locator(tid('letter-sign')).count()).toBe(0);
    await page.locator(tid('letter-word')).scrollIntoViewIfNeeded();
    await shot(page, 'signing-09-letter-signed-offline');
    expect((await server.api<LetterDoc>('GET', `/letters/${letterId}`, undefined, office)).opinions).toEqual([]);

    await goOfflineOn(expert, false);
    await syncUi(page);
    await until('the outbox to empty', async () => (await outboxCount(page)) === 0, 30_000);
    const doc = await server.api<LetterDoc>('GET', `/letters/${letterId}`, undefined, office);
    expect(doc.opinions).toEqual([
      expect.objectContaining({ user: ids[0], decision: 'sign', current: true, signature_valid: true, on_panel: true }),
    ]);
    const strokes = await idbAll<{ sha256: string; state: string }>(page, 'strokes');
    // The expert's own strokes are uploaded; the others' (fetched to show them) are held too.
    expect(strokes.find((s) => s.sha256 === doc.opinions[0]?.strokes?.sha256)?.state).toBe('complete');
    expect(strokes.every((s) => s.state === 'complete')).toBe(true);
    await expect.poll(() => page.locator(tid('letter-pending')).count()).toBe(0);
    expect(expert.errors, expert.errors.join('\n')).toEqual([]);
  });

  test('the rest of the panel signs, the office issues it: 已出具, nothing more can be added', async () => {
    const before = await server.api<LetterDoc>('GET', `/letters/${letterId}`, undefined, office);
    for (const e of EXPERTS.slice(1)) {
      const device = await ApiDevice.enrol(e.username);
      const strokes = await device.strokes(seed.roundId);
      const element = await device.sign({
        purpose: 'letter',
        letter: letterId,
        content_hash: before.letter_hash,
        decision: 'sign',
        reason: '',
        signer: device.signer(),
        signed_at_ms: Date.now(),
        strokes,
      });
      expect(await device.push(letterId, [{ kind: 'add', field: 'experts/opinions', element }])).toEqual([
        expect.objectContaining({ status: 'applied' }),
      ]);
    }
    const issued = await server.api<LetterDoc>('POST', `/letters/${letterId}/issue`, undefined, office);
    expect(issued.status).toBe('issued');
    const { page } = expert;
    await syncUi(page);
    await expect.poll(() => page.locator(tid('letter-state')).innerText()).toBe('已出具');
    await expect.poll(() => page.locator(tid('letter-issued')).count()).toBe(1);
    await expect.poll(() => page.locator(tid('letter-word')).count()).toBe(3);
    expect(await page.locator(tid('letter-sign')).count()).toBe(0);
    expect(await page.locator(tid('letter-decline')).count()).toBe(0);
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'signing-10-letter-issued');
    await page.locator(tid('tab-letters')).click();
    await expect.poll(() => page.locator(`${tid('letter-item')} ${tid('letter-status')}`).innerText()).toBe('已出具');
    expect(expert.errors, expert.errors.join('\n')).toEqual([]);
  });
});

async function goOfflineOn(p: Phone, offline: boolean): Promise<void> {
  await p.context.setOffline(offline);
  if (offline) {
    await until('the app to notice it is offline', async () =>
      ((await p.page.locator(tid('sync-state')).textContent()) ?? '').includes('离线'),
    );
  }
}

// ───────────── the rest of the record, signed over the API ─────────────

/** The canonical JSON of PROTOCOL.md §3 (integers, strings, maps, lists only). */
function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(',')}}`;
}

function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

interface TemplatePart {
  key: string;
  kind: string;
  rule?: { op: string; threshold: { kind: string; value?: string } } | null;
}
interface TemplateDoc {
  sections: { department: string; applies_to: string[]; items: { number: number; applies_to: string[]; parts: TemplatePart[] }[] }[];
}

/** A passing answer for a deciding part (with the design value it is compared with), or none. */
function passing(part: TemplatePart): { value: string; design?: string } | null {
  if (part.kind === 'pass_fail') return { value: 'pass' };
  if (part.kind !== 'number' || !part.rule) return null;
  const t = part.rule.threshold.kind === 'value' ? Number(part.rule.threshold.value) : 10;
  const op = part.rule.op;
  const v = op === 'gt' || op === '>' ? t + 1 : op === 'lt' || op === '<' ? t - 1 : t;
  return part.rule.threshold.kind === 'value' ? { value: String(v) } : { value: String(v), design: String(t) };
}

/** A person's device over the API: enrolled key, bound session, its own op series. */
class ApiDevice {
  private seq = 0;
  private constructor(
    readonly id: string,
    readonly token: string,
    readonly user: { id: string; display_name: string; role: string; department: string | null; specialty: string | null },
    private readonly key: CryptoKeyPair,
  ) {}

  static async enrol(username: string): Promise<ApiDevice> {
    const first = await server.login(username);
    const me = await server.api<ApiDevice['user']>('GET', '/me', undefined, first);
    const key = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', key.publicKey);
    const d = await server.api<{ id: string }>('POST', '/devices', { name: 'api', public_key: { kty, crv, x, y } }, first);
    const bound = await server.api<{ access_token: string }>('POST', '/auth/login', { username, password: PASSWORD, device_id: d.id }, '');
    return new ApiDevice(d.id, bound.access_token, me, key);
  }

  async push(entity: string, bodies: Record<string, unknown>[]): Promise<{ status: string; code?: string; message?: string }[]> {
    const ops = bodies.map((b) => ({ id: uuid(), device: this.id, seq: ++this.seq, hlc: { wall_ms: Date.now(), counter: this.seq }, entity, ...b }));
    const res = await server.api<{ results: { status: string; code?: string; message?: string }[] }>(
      'POST',
      '/sync',
      { protocol_version: 1, device: this.id, ops, cursor: 0, pull_limit: 1 },
      this.token,
    );
    return res.results;
  }

  /** A handwritten scribble, uploaded for `record`. */
  async strokes(record: string): Promise<{ sha256: string; size: number }> {
    const text = canonical({ format: 'yanshou-strokes/1', width: 300, height: 120, strokes: [{ points: [[10, 60, 0], [80, 20, 30], [150, 90, 60], [290, 40, 120]] }] });
    const bytes = new TextEncoder().encode(text);
    const sha256 = sha256Hex(bytes);
    const up = await server.api<{ id?: string; complete: boolean }>(
      'POST',
      '/uploads',
      { sha256, size: bytes.length, content_type: 'application/vnd.yanshou.strokes+json', record_id: record },
      this.token,
    );
    if (!up.complete && up.id) {
      const patch = await fetch(`${server.base}/api/v1/uploads/${up.id}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/offset+octet-stream', 'upload-offset': '0' },
        body: bytes,
      });
      if (!patch.ok) throw new Error(`PATCH strokes: ${patch.status} ${await patch.text()}`);
      await server.api('POST', `/uploads/${up.id}/finish`, undefined, this.token);
    }
    return { sha256, size: bytes.length };
  }

  async sign(statement: Record<string, unknown>): Promise<Record<string, unknown>> {
    const st = { ...statement, device: this.id };
    const sig = new Uint8Array(
      await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, this.key.privateKey, new TextEncoder().encode(canonical(st))),
    );
    return { alg: 'ES256', sig: Buffer.from(sig).toString('base64url'), statement: st };
  }

  signer(): Record<string, unknown> {
    const u = this.user;
    return { user: u.id, name: u.display_name, role: u.role, department: u.department ?? null, specialty: u.specialty ?? null };
  }
}

/** The round's template and a test of what applies to its disposition. */
async function templateOf(roundId: string) {
  const round = await server.api<{ template_ref: string; disposition: string }>('GET', `/rounds/${roundId}`);
  const at = round.template_ref.lastIndexOf('@');
  const template = await server.api<TemplateDoc>(
    'GET',
    `/templates/${encodeURIComponent(round.template_ref.slice(0, at))}/${encodeURIComponent(round.template_ref.slice(at + 1))}`,
  );
  const applies = (list: string[]) => list.length === 0 || list.includes(round.disposition);
  return { template, applies };
}

/** Passing answers to every deciding part of a section's applicable items, by field key. */
async function passingAnswers(roundId: string, department: string): Promise<Record<string, string>> {
  const { template, applies } = await templateOf(roundId);
  const fields: Record<string, string> = {};
  const section = template.sections.find((x) => x.department === department);
  for (const item of (section?.items ?? []).filter((i) => applies(i.applies_to))) {
    for (const part of item.parts) {
      const p = passing(part);
      const key = `${department}/${item.number}.${part.key}`;
      if (p?.design !== undefined) fields[`${key}.design`] = p.design;
      if (p) fields[key] = p.value;
    }
  }
  return fields;
}

/** Every other applicable section not yet signed answered (passing) and signed by a person of its unit. */
async function signTheRest(roundId: string, except: string): Promise<void> {
  const { template, applies } = await templateOf(roundId);
  const signed = new Set(
    (await server.api<RecordDoc>('GET', `/rounds/${roundId}/record`)).sections.filter((x) => x.signature).map((x) => x.department),
  );
  for (const section of template.sections) {
    if (section.department === except || signed.has(section.department) || !applies(section.applies_to)) continue;
    const username = `sign.${section.department}`;
    await server.api('POST', '/users', {
      username,
      display_name: `${section.department} 验收员`,
      password: PASSWORD,
      ...(section.department === 'township'
        ? { role: 'township_officer', township_id: seed.townshipId }
        : { role: 'department_inspector', department: section.department }),
    });
    const device = await ApiDevice.enrol(username);
    const fields = await passingAnswers(roundId, section.department);
    const sets = Object.entries(fields).map(([field, value]) => ({ kind: 'set', field, value, base_rev: 0 }));
    const hash = sha256Hex(
      canonical({ entity: roundId, entity_type: 'acceptance_record', fields, section: section.department, sets: {} }),
    );
    const strokes = await device.strokes(roundId);
    const signature = await device.sign({
      purpose: 'section',
      entity: roundId,
      section: section.department,
      content_hash: hash,
      signer: device.signer(),
      signed_at_ms: Date.now(),
      strokes,
    });
    const results = await device.push(roundId, [...sets, { kind: 'sign', section: section.department, content_hash: hash, signature }]);
    expect(results.filter((r) => r.status !== 'applied'), section.department).toEqual([]);
  }
}
