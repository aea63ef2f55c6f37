/** Small integer hashes, to derive independent random streams from (seed, index) pairs. */

/** Mixes a 32-bit value (the murmur3 finaliser). */
export function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A 32-bit seed from a sequence of integers; order matters. */
export function hashSeed(...parts: number[]): number {
  let h = 0x2545f491;
  for (const part of parts) {
    h = fmix32((h ^ fmix32((part >>> 0) + 0x9e3779b9)) >>> 0);
    h = (Math.imul(h, 5) + 0xe6546b64) >>> 0;
  }
  return fmix32(h);
}

/** FNV-1a of a string, 32 bits. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
