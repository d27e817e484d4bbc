/**
 * Browser end-to-end harness: the real `yanshou` binary on a fresh SQLite file, the built PWA
 * (`mobile-web/dist`) on the same origin, Debian's chromium driven by playwright-core.
 *
 * Builds nothing: `tests/run` builds the server (cargo) and the PWA (`npm run build`) first.
 * - `YANSHOU_BIN`: the binary (default `$CARGO_TARGET_DIR/debug/yanshou`, else
 *   `target/debug/yanshou`);
 * - `YANSHOU_WEB_DIST`: the built app (default `mobile-web/dist`).
 *
 * Each test file starts its own server in a temp directory, serving a copy of the app on the
 * API's origin (`web_dir`; a test replaces its files to publish an update), seeds it through the
 * real HTTP API as an admin made with `yanshou user add`, and gives each phone its own browser
 * context (own IndexedDB, service worker and caches). Nothing here sleeps to wait: every wait
 * polls a condition with a deadline. `YANSHOU_E2E_KEEP=1` keeps the server's directory.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';

export const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, '../..');
export const OUT = join(HERE, 'out');
export const SHOTS = join(OUT, 'screenshots');
export const PASSWORD = 'browser-test-password';
export const VIEWPORT = { width: 360, height: 780 };

export function yanshouBin(): string {
  if (process.env['YANSHOU_BIN']) return process.env['YANSHOU_BIN'];
  const candidates = [
    process.env['CARGO_TARGET_DIR'] ? join(process.env['CARGO_TARGET_DIR'], 'debug/yanshou') : null,
    join(REPO, 'target/debug/yanshou'),
  ].filter((p): p is string => p !== null);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(`no yanshou binary in ${candidates.join(' or ')}: build it (cargo build -p yanshou-server --bin yanshou) or set YANSHOU_BIN`);
  }
  return found;
}

export function distDir(): string {
  const d = process.env['YANSHOU_WEB_DIST'] ?? join(REPO, 'mobile-web/dist');
  if (!existsSync(join(d, 'index.html')) || !existsSync(join(d, 'sw.js'))) {
    throw new Error(`no built PWA in ${d}: run npm ci && npm run build in mobile-web`);
  }
  return d;
}

/** Polls `f` until it returns a value other than `undefined`/`false`, or throws at the deadline. */
export async function until<T>(
  what: string,
  f: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 15_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// ───────────────────────────── the server ─────────────────────────────

/** Whether this binary serves the PWA itself (`web_dir` setting). */
function servesWeb(bin: string): boolean {
  const r = spawnSync(bin, ['default-config'], { encoding: 'utf8' });
  return r.status === 0 && /^\s*web_dir\s*=/m.test(r.stdout);
}

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('YANSHOU_')) env[k] = v;
  return { ...env, ...extra };
}

export interface Seed {
  townshipId: string;
  mineId: string;
  mineName: string;
  roundId: string;
  /** The users made, by role in the tests. */
  users: { water1: string; water2: string; forest: string };
}

/**
 * One `yanshou serve` on a fresh SQLite file in a temp directory, with its own copy of the app
 * in `<dir>/web` (replace its files to publish an update).
 */
export class YanshouServer {
  readonly dir: string;
  readonly webDir: string;
  private child: ChildProcess | null = null;
  private log: string[] = [];
  /** The server's origin: the app and the API. */
  base = '';
  adminToken = '';

  private constructor(
    private readonly bin: string,
    private readonly env: Record<string, string>,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'yanshou-browser-'));
    this.webDir = join(this.dir, 'web');
    cpSync(distDir(), this.webDir, { recursive: true });
    if (!servesWeb(bin)) throw new Error(`${bin} does not serve the app (no web_dir setting): rebuild it`);
  }

  /** Starts a server (admin account made with the CLI first) and waits until it is ready. */
  static async start(
    env: Record<string, string> = {},
    before: (s: YanshouServer) => void = () => undefined,
  ): Promise<YanshouServer> {
    const s = new YanshouServer(yanshouBin(), env);
    s.cli(['user', 'add', 'admin', '--display-name', '管理员'], { YANSHOU_NEW_PASSWORD: PASSWORD });
    before(s);
    await s.spawnServer();
    await s.waitReady();
    s.adminToken = await s.login('admin');
    return s;
  }

  private serverEnv(): Record<string, string> {
    return {
      YANSHOU_DATABASE_URL: `sqlite://${join(this.dir, 'y.db')}`,
      YANSHOU_BLOB_DIR: join(this.dir, 'blobs'),
      YANSHOU_LOG: 'warn',
      YANSHOU_WEB_DIR: this.webDir,
      ...this.env,
    };
  }

  /** Runs a CLI subcommand against this server's database. */
  cli(args: string[], env: Record<string, string> = {}): string {
    const r = spawnSync(this.bin, args, {
      cwd: this.dir,
      env: cleanEnv({ ...this.serverEnv(), ...env }),
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`yanshou ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  }

  private async spawnServer(): Promise<void> {
    const child = spawn(this.bin, ['serve'], {
      cwd: this.dir,
      env: cleanEnv({ ...this.serverEnv(), YANSHOU_LISTEN: '127.0.0.1:0' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stderr?.on('data', (d: Buffer) => {
      this.log.push(d.toString());
      if (this.log.length > 200) this.log.shift();
    });
    const lines = createInterface({ input: child.stdout! });
    const addr = await new Promise<string>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`yanshou serve printed no address in 30 s: ${this.log.join('')}`)), 30_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        fail(new Error(`yanshou serve exited (${code}): ${this.log.join('')}`));
      });
      lines.on('line', (line) => {
        const m = /^yanshou listening on (http:\/\/\S+)/.exec(line);
        if (m?.[1]) {
          clearTimeout(timer);
          ok(m[1]);
        }
      });
    });
    this.base = addr;
  }

  private async waitReady(): Promise<void> {
    await until('GET /readyz', async () => {
      const r = await fetch(`${this.base}/readyz`).catch(() => null);
      return r?.ok === true;
    }, 30_000);
  }

  /**
   * Publishes a new version of the app as a county does: new files in the web directory (the
   * server reads them from disk on every request; no restart).
   */
  publish(change: (webDir: string) => void): void {
    change(this.webDir);
  }

  private async stopServer(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise<void>((ok) => c.once('exit', () => ok()));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    await this.stopServer();
    if (!process.env['YANSHOU_E2E_KEEP']) rmSync(this.dir, { recursive: true, force: true });
  }

  // ─────────── the HTTP API ───────────

  async api<T = unknown>(method: string, path: string, body?: unknown, token = this.adminToken): Promise<T> {
    const res = await fetch(`${this.base}/api/v1${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  async login(username: string): Promise<string> {
    const s = await this.api<{ access_token: string }>('POST', '/auth/login', { username, password: PASSWORD }, '');
    return s.access_token;
  }

  async addUser(username: string, displayName: string, role: string, department?: string): Promise<string> {
    const u = await this.api<{ id: string }>('POST', '/users', {
      username,
      display_name: displayName,
      password: PASSWORD,
      role,
      ...(department ? { department } : {}),
    });
    return u.id;
  }

  /** Imports an acceptance template file (`yanshou template import`) before the server starts. */
  static async startWithTemplate(toml: string, ref: string): Promise<YanshouServer> {
    const file = join(tmpdir(), `yanshou-template-${randomUUID()}.toml`);
    writeFileSync(file, toml);
    try {
      return await YanshouServer.start({ YANSHOU_ACCEPTANCE_TEMPLATE: ref }, (s) =>
        s.cli(['template', 'import', file]),
      );
    } finally {
      rmSync(file, { force: true });
    }
  }

  /**
   * Sends `ops` (each without `device`, `seq`, `hlc`, `id`) from a new device of `username`,
   * as that user's phone would: enrols a P-256 key, logs in bound to it, pushes one batch.
   * Returns each op's result.
   */
  async pushAs(username: string, ops: Record<string, unknown>[]): Promise<{ status: string; code?: string }[]> {
    const first = await this.login(username);
    const pair = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])) as CryptoKeyPair;
    const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', pair.publicKey);
    const device = await this.api<{ id: string }>(
      'POST',
      '/devices',
      { name: 'test device', public_key: { kty, crv, x, y } },
      first,
    );
    const bound = await this.api<{ access_token: string }>(
      'POST',
      '/auth/login',
      { username, password: PASSWORD, device_id: device.id },
      '',
    );
    const now = Date.now();
    const res = await this.api<{ results: { status: string; code?: string }[] }>(
      'POST',
      '/sync',
      {
        protocol_version: 1,
        device: device.id,
        ops: ops.map((op, i) => ({
          id: randomUUID(),
          device: device.id,
          seq: i + 1,
          hlc: { wall_ms: now, counter: i },
          ...op,
        })),
        cursor: 0,
        pull_limit: 1,
      },
      bound.access_token,
    );
    return res.results;
  }

  /**
   * A township, a mine whose cancellation (注销) is approved, an open acceptance round on it,
   * and three inspectors: two of 水利 (water_resources), one of 林业 (forestry).
   */
  async seed(): Promise<Seed> {
    const town = await this.api<{ id: string }>('POST', '/townships', { name: '泗溪镇', kind: 'town' });
    const mineName = '大岭石灰岩矿';
    const mine = await this.api<{ id: string }>('POST', '/mines', {
      name: mineName,
      licence_no: `C3609232010057130000${Math.floor(Math.random() * 900 + 100)}`,
      holder: '上高县大岭石业有限公司',
      township_id: town.id,
      mineral: '石灰岩',
      mining_method: '露天开采',
    });
    for (const t of [{ transition: 'propose', disposition: 'cancel' }, { transition: 'approve' }]) {
      await this.api('POST', `/mines/${mine.id}/transitions`, t);
    }
    const round = await this.api<{ id: string }>('POST', `/mines/${mine.id}/rounds`);
    const users = { water1: 'shuili.wang', water2: 'shuili.li', forest: 'linye.zhao' };
    await this.addUser(users.water1, '王水利', 'department_inspector', 'water_resources');
    await this.addUser(users.water2, '李水利', 'department_inspector', 'water_resources');
    await this.addUser(users.forest, '赵林业', 'department_inspector', 'forestry');
    return { townshipId: town.id, mineId: mine.id, mineName, roundId: round.id, users };
  }
}

// ───────────────────────────── the browser ─────────────────────────────

const LAUNCH = {
  executablePath: process.env['CHROMIUM'] ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
};

const CONTEXT = {
  viewport: VIEWPORT,
  locale: 'zh-CN',
  timezoneId: 'Asia/Shanghai',
  serviceWorkers: 'allow' as const,
};

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch(LAUNCH);
}

/**
 * A phone whose browser keeps its profile in `userDataDir` (a new empty directory for a new
 * phone): closing it ends the browser process, launching it again is a cold start.
 */
export async function launchPersistentPhone(userDataDir: string): Promise<Phone> {
  const context = await chromium.launchPersistentContext(userDataDir, { ...LAUNCH, ...CONTEXT });
  const page = context.pages()[0] ?? (await context.newPage());
  return { context, page, errors: watchErrors(page) };
}

function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  return errors;
}

export interface Phone {
  context: BrowserContext;
  page: Page;
  /** Console errors and page errors seen (a test may assert there are none). */
  errors: string[];
}

/** A phone: its own browser context (IndexedDB, service worker, caches), 360 × 780. */
export async function newPhone(browser: Browser): Promise<Phone> {
  const context = await browser.newContext(CONTEXT);
  const page = await context.newPage();
  return { context, page, errors: watchErrors(page) };
}

export function tid(id: string): string {
  return `[data-testid="${id}"]`;
}

/** The radio labelled `label` (达标, 不达标, 不涉及) of a pass/fail field. */
export function radio(page: Page, testid: string, label: string): Locator {
  return page.locator(tid(testid)).locator('.van-radio').filter({
    has: page.locator('.van-radio__label').getByText(label, { exact: true }),
  });
}

/** Waits until the service worker controls the page (the app is then available offline). */
export async function waitControlled(page: Page): Promise<void> {
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: 30_000 });
}

/** Logs in through the login screen and waits for the mine list. */
export async function loginUi(page: Page, base: string, username: string): Promise<void> {
  await page.goto(`${base}/`);
  await page.locator(`${tid('login-username')} input`).fill(username);
  await page.locator(`${tid('login-password')} input`).fill(PASSWORD);
  await page.locator(tid('login-submit')).click();
  await page.locator(tid('sync-bar')).waitFor({ timeout: 30_000 });
}

/** Reads one object store of the app's IndexedDB (`yanshou`) in the page. */
export async function idbAll<T = unknown>(page: Page, store: string): Promise<T[]> {
  return page.evaluate(
    (name) =>
      new Promise<T[]>((ok, fail) => {
        const open = indexedDB.open('yanshou');
        open.onerror = () => fail(open.error);
        open.onsuccess = () => {
          const db = open.result;
          const q = db.transaction(name, 'readonly').objectStore(name).getAll();
          q.onsuccess = () => {
            ok(q.result as T[]);
            db.close();
          };
          q.onerror = () => fail(q.error);
        };
      }),
    store,
  );
}

export async function outboxCount(page: Page): Promise<number> {
  return (await idbAll(page, 'outbox')).length;
}

async function lastSyncAt(page: Page): Promise<number> {
  const meta = await idbAll<{ key: string; value: { lastSyncAt?: number } }>(page, 'meta');
  return meta.find((m) => m.key === 'sync')?.value.lastSyncAt ?? 0;
}

/**
 * Taps 同步 on the sync bar and waits for a sync that started after the tap to finish
 * successfully (its time stored in IndexedDB moves, the bar no longer says 正在同步).
 */
export async function syncUi(page: Page): Promise<void> {
  const before = await lastSyncAt(page);
  await until(
    'a successful sync',
    async () => {
      const state = (await page.locator(tid('sync-state')).first().textContent()) ?? '';
      if (state.includes('同步失败') || state.includes('需重新登录')) {
        throw new Error(`sync failed: ${state}`);
      }
      if (state.includes('正在同步')) return false;
      if ((await lastSyncAt(page)) > before) return true;
      // Not started yet, or a sync that began before the tap finished: tap again.
      await page.locator(tid('sync-now')).first().click();
      return false;
    },
    30_000,
    200,
  );
}

export async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

/** Adds numbers to `out/budgets.json` (one key per measurement) and prints them. */
export function recordBudget(key: string, value: unknown): void {
  mkdirSync(OUT, { recursive: true });
  const path = join(OUT, 'budgets.json');
  const all = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : {};
  all[key] = value;
  writeFileSync(path, JSON.stringify(all, null, 2) + '\n');
  console.log(`budget ${key}: ${JSON.stringify(value)}`);
}

export function uuid(): string {
  return randomUUID();
}
