/**
 * A small JPEG of a photo for the item's list, made on the phone from the local bytes (the
 * original may be dropped once uploaded; the thumbnail stays for offline viewing).
 */

/** Longest side of a thumbnail, px (shown at about 72 CSS px on a 3× screen). */
export const THUMB_PX = 240;

/** Makes the thumbnail, or `null` when this browser cannot decode the image. */
export async function makeThumb(file: Blob): Promise<ArrayBuffer | null> {
  if (typeof createImageBitmap !== 'function' || typeof document === 'undefined') return null;
  let bitmap: ImageBitmap | null = null;
  try {
    bitmap = await createImageBitmap(file);
    const scale = Math.min(1, THUMB_PX / Math.max(bitmap.width, bitmap.height));
    const w = Math.max(1, Math.round(bitmap.width * scale));
    const h = Math.max(1, Math.round(bitmap.height * scale));
    const canvas = document.createElement('canvas');
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext('2d');
    if (!ctx) return null;
    ctx.drawImage(bitmap, 0, 0, w, h);
    const blob = await new Promise<Blob | null>((ok) => canvas.toBlob(ok, 'image/jpeg', 0.75));
    return blob ? await blob.arrayBuffer() : null;
  } catch {
    return null;
  } finally {
    bitmap?.close();
  }
}
