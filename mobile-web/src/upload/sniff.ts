/**
 * What a picked file is, by its first bytes, and whether the server will take it — checked on
 * the phone at capture, before the inspector relies on the photo (the server checks again at
 * upload: `server/src/photos/sniff.rs`). Never by file name or the browser's `type`.
 */

export type PhotoType = 'image/jpeg' | 'image/png';

/** The server's announced limits (`GET /api/v1/uploads/limits`). */
export interface UploadLimits {
  chunk_max_bytes: number;
  file_max_bytes: number;
  content_types: string[];
}

/** Used until the server has announced its own (the server's built-in limits). */
export const DEFAULT_LIMITS: UploadLimits = {
  chunk_max_bytes: 1024 * 1024,
  file_max_bytes: 30_000_000,
  content_types: ['image/jpeg', 'image/png'],
};

export type Sniffed = { ok: true; contentType: PhotoType } | { ok: false; message: string };

const HEIF_BRANDS = new Set(['heic', 'heix', 'heim', 'heis', 'hevc', 'hevx', 'mif1', 'msf1', 'avif']);

function ascii(bytes: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let i = from; i < to && i < bytes.length; i++) s += String.fromCharCode(bytes[i] ?? 0);
  return s;
}

/** The kind of an image by its magic bytes (at least the first 16 bytes are needed). */
export function sniffImage(head: Uint8Array): Sniffed {
  if (head.length === 0) return { ok: false, message: '文件是空的，不是照片' };
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) {
    return { ok: true, contentType: 'image/jpeg' };
  }
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (head.length >= 8 && png.every((b, i) => head[i] === b)) return { ok: true, contentType: 'image/png' };
  if (ascii(head, 4, 8) === 'ftyp' && HEIF_BRANDS.has(ascii(head, 8, 12))) {
    return {
      ok: false,
      message:
        '这是 HEIC/HEIF 格式的照片（苹果手机默认格式），服务器不接受。' +
        '请在手机“设置 → 相机 → 格式”中选择“兼容性最佳”后重新拍摄，或改用 JPEG 照片。',
    };
  }
  return { ok: false, message: '不是 JPEG 或 PNG 照片，服务器不接受' };
}

function mb(bytes: number): string {
  return (bytes / 1_000_000).toFixed(1);
}

/** Type and size against the server's limits: the type when the server will take the file. */
export function checkPhoto(head: Uint8Array, size: number, limits: UploadLimits): Sniffed {
  const kind = sniffImage(head);
  if (!kind.ok) return kind;
  if (!limits.content_types.includes(kind.contentType)) {
    return { ok: false, message: `服务器不接受 ${kind.contentType} 类型的文件` };
  }
  if (size > limits.file_max_bytes) {
    return {
      ok: false,
      message: `照片有 ${mb(size)} MB，超过服务器允许的 ${mb(limits.file_max_bytes)} MB。请降低相机分辨率后重拍。`,
    };
  }
  return kind;
}

/** Reads a limits answer defensively (a missing or odd member keeps the default). */
export function readLimits(v: unknown): UploadLimits {
  if (typeof v !== 'object' || v === null) return DEFAULT_LIMITS;
  const o = v as Record<string, unknown>;
  const pos = (x: unknown, d: number) => (typeof x === 'number' && Number.isSafeInteger(x) && x > 0 ? x : d);
  const types = Array.isArray(o['content_types'])
    ? o['content_types'].filter((t): t is string => typeof t === 'string')
    : DEFAULT_LIMITS.content_types;
  return {
    chunk_max_bytes: pos(o['chunk_max_bytes'], DEFAULT_LIMITS.chunk_max_bytes),
    file_max_bytes: pos(o['file_max_bytes'], DEFAULT_LIMITS.file_max_bytes),
    content_types: types.length > 0 ? types : DEFAULT_LIMITS.content_types,
  };
}
