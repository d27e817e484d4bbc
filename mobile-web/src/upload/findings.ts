/**
 * The server's findings about a photo (the record's field `photos/<sha256>`, PROTOCOL.md §13)
 * in the words the inspector reads. Verdicts are shown beside the facts, never instead of them.
 */
import type { Value } from '../protocol';

export interface Findings {
  status: 'awaiting_upload' | 'received' | string;
  /** Location verdicts of the file's EXIF and of the phone's own fix. */
  location: { exif: string; phone: string };
  time: { exif: string; phone: string };
  /** How each verdict reads: `ok`, `warn` (near, a few days off) or `bad` (outside). */
  tone: { exifLocation: Tone; phoneLocation: Tone; exifTime: Tone; phoneTime: Tone };
  /** The two fixes disagree (further apart than the larger accuracy), with the words. */
  disagree: string | null;
  /** EXIF problems the server noted (field and problem). */
  warnings: string[];
}

export type Tone = 'ok' | 'warn' | 'bad' | 'unknown';

function toneOf(v: Value | undefined): Tone {
  switch (str(obj(v)?.['verdict'])) {
    case 'inside':
    case 'same_day':
      return 'ok';
    case 'near':
    case 'within_days':
      return 'warn';
    case 'outside':
      return 'bad';
    default:
      return 'unknown';
  }
}

function obj(v: Value | undefined): Record<string, Value> | null {
  return v !== null && v !== undefined && typeof v === 'object' && !Array.isArray(v) ? v : null;
}
function str(v: Value | undefined): string | null {
  return typeof v === 'string' ? v : null;
}

/** `12.3` → `12`; `0.4` → `0.4`: metres as a person says them. */
function metres(text: string | null): string {
  if (text === null) return '?';
  const n = Number(text);
  if (!Number.isFinite(n)) return text;
  return n >= 10 ? String(Math.round(n)) : text.replace(/\.0+$/, '');
}

/** 在矿区范围内 / 范围外附近 n 米 / 范围外 n 米 / 位置未知. */
export function locationText(v: Value | undefined): string {
  const o = obj(v);
  const m = metres(str(o?.['metres']));
  switch (str(o?.['verdict'])) {
    case 'inside':
      return '在矿区范围内';
    case 'near':
      return `范围外附近 ${m} 米`;
    case 'outside':
      return `范围外 ${m} 米`;
    default:
      return '位置未知';
  }
}

/** 当天 / 相差 n 天 / 未知 (days = capture day − visit day). */
export function timeText(v: Value | undefined): string {
  const o = obj(v);
  const d = o?.['days'];
  const days = typeof d === 'number' ? d : null;
  const diff = days === null ? '' : `相差 ${Math.abs(days)} 天${days < 0 ? '（验收日前）' : days > 0 ? '（验收日后）' : ''}`;
  switch (str(o?.['verdict'])) {
    case 'same_day':
      return '当天';
    case 'within_days':
      return diff || '相差数天';
    case 'outside':
      return `${diff || '相差较多天'}，超出允许范围`;
    default:
      return '未知';
  }
}

/** Reads the findings value, or `null` when there is none (yet). */
export function readFindings(v: Value | undefined): Findings | null {
  const o = obj(v);
  if (!o) return null;
  const status = str(o['status']) ?? 'awaiting_upload';
  const received = status === 'received';
  const loc = obj(o['location']);
  const time = obj(o['time']);
  const pos = obj(o['positions']);
  const exif = obj(o['exif']);
  const warnings: string[] = [];
  const list = exif?.['warnings'];
  if (Array.isArray(list)) {
    for (const w of list) {
      const wo = obj(w);
      if (wo) warnings.push(`${str(wo['field']) ?? ''} ${str(wo['problem']) ?? ''}`.trim());
    }
  }
  return {
    status,
    location: {
      exif: received ? locationText(loc?.['exif']) : '上传后判定',
      phone: locationText(loc?.['phone']),
    },
    time: {
      exif: received ? timeText(time?.['exif']) : '上传后判定',
      phone: timeText(time?.['phone']),
    },
    tone: {
      exifLocation: received ? toneOf(loc?.['exif']) : 'unknown',
      phoneLocation: toneOf(loc?.['phone']),
      exifTime: received ? toneOf(time?.['exif']) : 'unknown',
      phoneTime: toneOf(time?.['phone']),
    },
    disagree:
      pos && pos['disagree'] === true
        ? `照片记录的位置与手机定位相差 ${metres(str(pos['metres']))} 米（允许 ${metres(str(pos['allowed_m']))} 米），请核实`
        : null,
    warnings,
  };
}

/** The findings field of a photo. */
export function findingsField(sha256: string): string {
  return `photos/${sha256}`;
}
