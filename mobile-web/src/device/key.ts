/**
 * The device key: a P-256 ECDSA key pair made with WebCrypto, **non-extractable** — the private
 * key can sign but never be read out, not even by this app. It is stored in IndexedDB as a
 * `CryptoKey` object (structured clone keeps the non-extractable flag). The public key is sent
 * as a JWK when the phone enrolls.
 */

export interface DeviceKey {
  publicKey: CryptoKey;
  privateKey: CryptoKey;
}

export function webCryptoAvailable(): boolean {
  return typeof crypto !== 'undefined' && typeof crypto.subtle !== 'undefined';
}

export async function makeDeviceKey(): Promise<DeviceKey> {
  if (!webCryptoAvailable()) {
    throw new Error('此浏览器不支持 WebCrypto（需要 HTTPS 安全连接）');
  }
  const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'sign',
    'verify',
  ]);
  return { publicKey: pair.publicKey, privateKey: pair.privateKey };
}

export async function publicJwk(key: DeviceKey): Promise<JsonWebKey> {
  const jwk = await crypto.subtle.exportKey('jwk', key.publicKey);
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
}

/** A readable name for the device list (browser and platform). */
export function deviceName(): string {
  const ua = typeof navigator !== 'undefined' ? navigator.userAgent : '';
  const os = /Android/.test(ua)
    ? 'Android'
    : /iPhone|iPad/.test(ua)
      ? 'iOS'
      : /Windows/.test(ua)
        ? 'Windows'
        : /Mac OS/.test(ua)
          ? 'macOS'
          : /Linux/.test(ua)
            ? 'Linux'
            : '未知系统';
  return `${os} 浏览器 ${new Date().toISOString().slice(0, 10)}`;
}
