// A small PNG encoder for 8-bit RGB with text chunks (sharp cannot write arbitrary tEXt), a
// reader of those text chunks, and atomic file writing. PNG layout: an 8-byte signature, then
// chunks of [length u32 BE][type 4 bytes][data][CRC-32 of type + data].
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { deflate as deflateCb, inflateSync } from 'node:zlib';

import type { RgbImage } from './image.js';

const deflate = promisify(deflateCb);

const SIGNATURE = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

// CRC-32 (ISO 3309, the polynomial zlib uses), table-driven.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

const isLatin1 = (s: string): boolean => /^[\u0000-\u00ff]*$/.test(s);

function checkKeyword(key: string): void {
  // PNG keywords: 1–79 printable Latin-1 characters, no leading, trailing or double spaces.
  if (
    key.length < 1 ||
    key.length > 79 ||
    !/^[\u0020-\u007e\u00a1-\u00ff]+$/.test(key) ||
    key.startsWith(' ') ||
    key.endsWith(' ') ||
    key.includes('  ')
  ) {
    throw new RangeError(
      `PNG text keyword ${JSON.stringify(key)} is invalid: use 1–79 printable Latin-1 characters without leading, trailing or double spaces`,
    );
  }
}

/** tEXt when the value is Latin-1, else iTXt (uncompressed UTF-8, no language tag). */
function textChunk(key: string, value: string): Buffer {
  checkKeyword(key);
  if (value.includes('\0')) {
    throw new RangeError(`PNG text value for ${JSON.stringify(key)} contains a NUL character`);
  }
  if (isLatin1(value)) {
    return chunk(
      'tEXt',
      Buffer.concat([Buffer.from(key, 'latin1'), Buffer.of(0), Buffer.from(value, 'latin1')]),
    );
  }
  // keyword \0 compression-flag compression-method language-tag \0 translated-keyword \0 text
  return chunk(
    'iTXt',
    Buffer.concat([
      Buffer.from(key, 'latin1'),
      Buffer.of(0, 0, 0, 0, 0),
      Buffer.from(value, 'utf8'),
    ]),
  );
}

// Paeth predictor (PNG filter type 4).
function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * The filtered scanlines: each row prefixed by its filter type, the type chosen per row by the
 * smallest sum of absolute (signed) residuals, libpng's heuristic.
 */
function filterRows(img: RgbImage): Uint8Array {
  const bpp = 3;
  const stride = img.width * bpp;
  const out = new Uint8Array((stride + 1) * img.height);
  const candidate = new Uint8Array(stride);
  const best = new Uint8Array(stride);
  const zero = new Uint8Array(stride);
  for (let y = 0; y < img.height; y++) {
    const cur = img.data.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? img.data.subarray((y - 1) * stride, y * stride) : zero;
    let bestType = 0;
    let bestScore = Infinity;
    for (let type = 0; type < 5; type++) {
      let score = 0;
      for (let i = 0; i < stride; i++) {
        const a = i >= bpp ? cur[i - bpp]! : 0;
        const b = prev[i]!;
        const c = i >= bpp ? prev[i - bpp]! : 0;
        const pred =
          type === 0
            ? 0
            : type === 1
              ? a
              : type === 2
                ? b
                : type === 3
                  ? (a + b) >> 1
                  : paeth(a, b, c);
        const r = (cur[i]! - pred) & 0xff;
        candidate[i] = r;
        score += r < 128 ? r : 256 - r;
      }
      if (score < bestScore) {
        bestScore = score;
        bestType = type;
        best.set(candidate);
      }
    }
    out[y * (stride + 1)] = bestType;
    out.set(best, y * (stride + 1) + 1);
  }
  return out;
}

/** An 8-bit RGB, non-interlaced PNG with the given text chunks (before the image data). */
export async function encodePng(img: RgbImage, text: Record<string, string> = {}): Promise<Buffer> {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(img.width, 0);
  ihdr.writeUInt32BE(img.height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  ihdr[10] = 0; // compression: deflate
  ihdr[11] = 0; // filter method: adaptive
  ihdr[12] = 0; // no interlace
  const texts = Object.entries(text).map(([k, v]) => textChunk(k, v));
  const idat = await deflate(filterRows(img), { level: 6 });
  return Buffer.concat([
    SIGNATURE,
    chunk('IHDR', ihdr),
    ...texts,
    chunk('IDAT', idat),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/** The text chunks (tEXt, zTXt, iTXt) of PNG bytes, keyword → value; CRCs are checked. */
export function decodePngText(bytes: Uint8Array, name = 'PNG'): Record<string, string> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 8 || !buf.subarray(0, 8).equals(SIGNATURE)) {
    throw new Error(`${name} is not a PNG file (bad signature)`);
  }
  const out: Record<string, string> = {};
  let pos = 8;
  while (pos + 12 <= buf.length) {
    const length = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const end = pos + 8 + length;
    if (end + 4 > buf.length)
      throw new Error(`${name}: chunk ${type} runs past the end of the file`);
    const data = buf.subarray(pos + 8, end);
    if (type === 'tEXt' || type === 'zTXt' || type === 'iTXt') {
      if (crc32(buf.subarray(pos + 4, end)) !== buf.readUInt32BE(end)) {
        throw new Error(`${name}: bad CRC in a ${type} chunk`);
      }
      const nul = data.indexOf(0);
      if (nul < 1) throw new Error(`${name}: malformed ${type} chunk`);
      const key = data.toString('latin1', 0, nul);
      if (type === 'tEXt') {
        out[key] = data.toString('latin1', nul + 1);
      } else if (type === 'zTXt') {
        out[key] = inflateSync(data.subarray(nul + 2)).toString('latin1');
      } else {
        const compressed = data[nul + 1] === 1;
        const langEnd = data.indexOf(0, nul + 3);
        const transEnd = langEnd < 0 ? -1 : data.indexOf(0, langEnd + 1);
        if (transEnd < 0) throw new Error(`${name}: malformed iTXt chunk`);
        const body = data.subarray(transEnd + 1);
        out[key] = (compressed ? inflateSync(body) : body).toString('utf8');
      }
    }
    pos = end + 4;
    if (type === 'IEND') break;
  }
  return out;
}

/** Reads the text chunks of a PNG file. */
export async function readPngTextChunks(path: string): Promise<Record<string, string>> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new Error(`PNG file not found: ${path}`);
    throw new Error(`Cannot read ${basename(path)}: ${e.message}`);
  }
  return decodePngText(bytes, basename(path));
}

/**
 * Writes `bytes` to a temporary file in the target's folder, flushes it to disk and renames it
 * over `path`; on failure the temporary file is removed.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(
    dirname(path),
    `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
