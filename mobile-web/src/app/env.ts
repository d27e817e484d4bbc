/**
 * What the phone's browser environment puts at risk, said plainly (DESIGN.md "The phone").
 */

export interface StorageInfo {
  usage: number | null;
  quota: number | null;
  persisted: boolean | null;
}

/** WeChat's in-app browser: service workers and storage are unreliable there. */
export function inWeChat(): boolean {
  return /MicroMessenger/i.test(navigator.userAgent);
}

/** Running as an installed app (home screen), not a browser tab. */
export function isStandalone(): boolean {
  const nav = navigator as Navigator & { standalone?: boolean };
  return window.matchMedia('(display-mode: standalone)').matches || nav.standalone === true;
}

export function isIos(): boolean {
  return /iPhone|iPad|iPod/.test(navigator.userAgent);
}

export async function storageInfo(): Promise<StorageInfo> {
  const s = navigator.storage;
  if (!s) return { usage: null, quota: null, persisted: null };
  const [est, persisted] = await Promise.all([
    s.estimate ? s.estimate().catch(() => null) : Promise.resolve(null),
    s.persisted ? s.persisted().catch(() => null) : Promise.resolve(null),
  ]);
  return { usage: est?.usage ?? null, quota: est?.quota ?? null, persisted };
}

export function formatBytes(n: number | null): string {
  if (n === null) return '未知';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(1)} GB`;
}

/** The warning to show, or null when the data is as safe as the browser allows. */
export function storageRisk(info: StorageInfo): string | null {
  if (inWeChat()) {
    return '您正在微信内置浏览器中打开。微信中离线保存不可靠，请点右上角“…”选择“在浏览器中打开”。';
  }
  if (isStandalone() || info.persisted) return null;
  if (isIos()) {
    return '未添加到主屏幕：Safari 连续 7 天未打开本站时会删除手机上的全部数据（含未同步的填写）。请点“分享”→“添加到主屏幕”。';
  }
  return '未安装到桌面，浏览器在空间不足时可能清除本机数据（含未同步的填写）。请在浏览器菜单中选择“安装应用/添加到主屏幕”。';
}

const LARGE_TEXT_KEY = 'yanshou.largeText';

export function largeText(): boolean {
  return localStorage.getItem(LARGE_TEXT_KEY) === '1';
}

export function setLargeText(on: boolean): void {
  localStorage.setItem(LARGE_TEXT_KEY, on ? '1' : '0');
  document.documentElement.classList.toggle('large-text', on);
}

export function applyPreferences(): void {
  document.documentElement.classList.toggle('large-text', largeText());
}
