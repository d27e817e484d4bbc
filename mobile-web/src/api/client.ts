/**
 * The one HTTP client of the app: JSON in and out, a timeout, and typed failures.
 * `ApiError` carries the server's stable error `code` (the UI keys its Chinese messages on it);
 * `NetworkError` means the server could not be reached (offline, no signal, timeout).
 */
import type { ErrorBody } from './types';

export const API_BASE = './api/v1';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: { field: string; message: string }[] = [],
    /** The `Upload-Offset` header of an upload's 409 (where the server's offset is). */
    readonly uploadOffset: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export class NetworkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetworkError';
  }
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH';
  body?: unknown;
  /** A pre-encoded JSON body (sync requests are encoded once, not per retry). */
  rawBody?: string;
  /** Raw bytes (an upload's chunk) with their content type; instead of `body`/`rawBody`. */
  bytes?: { data: Uint8Array<ArrayBuffer>; contentType: string };
  /** More request headers (an upload's `Upload-Offset`). */
  headers?: Record<string, string>;
  token?: string;
  timeoutMs?: number;
}

/** A successful answer with its status and headers (for the upload protocol). */
export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
}

function isErrorBody(v: unknown): v is ErrorBody {
  if (typeof v !== 'object' || v === null || !('error' in v)) return false;
  const e = (v as { error: unknown }).error;
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string';
}

/** Sends one request and returns the response text (for callers that parse it themselves). */
export async function requestText(path: string, opts: RequestOptions = {}): Promise<string> {
  return (await requestRaw(path, opts)).text;
}

/** Sends one request; answers the status, headers and text of a success, throws otherwise. */
export async function requestRaw(path: string, opts: RequestOptions = {}): Promise<RawResponse> {
  const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
  let body: string | Uint8Array<ArrayBuffer> | undefined;
  if (opts.bytes !== undefined) {
    body = opts.bytes.data;
    headers['content-type'] = opts.bytes.contentType;
  } else {
    if (opts.rawBody !== undefined) body = opts.rawBody;
    else if (opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined) headers['content-type'] = 'application/json';
  }
  if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), opts.timeoutMs ?? 30_000);
  let res: Response;
  try {
    res = await fetch(`${API_BASE}${path}`, {
      method: opts.method ?? (body === undefined ? 'GET' : 'POST'),
      headers,
      body,
      signal: controller.signal,
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    const why = controller.signal.aborted ? '连接超时' : '无法连接服务器';
    throw new NetworkError(`${why}（${e instanceof Error ? e.message : String(e)}）`);
  } finally {
    clearTimeout(timer);
  }
  let text: string;
  try {
    text = await res.text();
  } catch (e) {
    throw new NetworkError(`读取响应失败（${e instanceof Error ? e.message : String(e)}）`);
  }
  if (!res.ok) {
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: a proxy's error page, say
    }
    if (isErrorBody(parsed)) {
      const offset = Number(res.headers.get('upload-offset') ?? 'NaN');
      throw new ApiError(
        res.status,
        parsed.error.code,
        parsed.error.message,
        parsed.error.fields,
        Number.isSafeInteger(offset) && offset >= 0 ? offset : null,
      );
    }
    if (res.status >= 500 || res.status === 0) {
      throw new NetworkError(`服务器暂时不可用（HTTP ${res.status}）`);
    }
    throw new ApiError(res.status, 'http_' + res.status, `服务器返回 HTTP ${res.status}`);
  }
  return { status: res.status, headers: res.headers, text };
}

export async function request<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const text = await requestText(path, opts);
  if (text === '') return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new NetworkError('服务器响应不是有效的 JSON');
  }
}

/** Chinese words for the server's error codes the phone shows. */
export function describeError(e: unknown): string {
  if (e instanceof NetworkError) return `网络不可用：${e.message}`;
  if (e instanceof ApiError) {
    const words: Record<string, string> = {
      invalid_credentials: '用户名或密码错误',
      rate_limited: '尝试次数过多，请稍后再试',
      unauthenticated: '登录已过期，请重新登录',
      refresh_token_reused: '登录凭据已在别处使用，为安全起见请重新登录',
      forbidden: '没有权限',
      not_found: '未找到',
      payload_too_large: '数据太大',
      unavailable: '服务器暂时不可用',
    };
    const w = words[e.code];
    return w ? `${w}（${e.message}）` : e.message;
  }
  return e instanceof Error ? e.message : String(e);
}
