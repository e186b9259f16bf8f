// safetensors: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}, then the
// raw little-endian tensor bytes. Reading goes tensor by tensor straight from the file into
// tensor memory, so a multi-GB checkpoint never sits in one JS buffer. Writing is atomic.
import {
  closeSync,
  fstatSync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename } from 'node:path';
import { Tensor } from '../engine/tensor.js';
import { fromFile } from '../engine/creation.js';
import { ITEM_SIZE, type DType } from '../engine/dtype.js';
import { native } from '../engine/native.js';

const FILE_DTYPES: Record<string, DType> = {
  F64: 'float64',
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};
const DTYPE_CODES = Object.fromEntries(
  Object.entries(FILE_DTYPES).map(([k, v]) => [v, k]),
) as Record<DType, string>;

// A real header is a few hundred KB at most (SD 1.5's UNet: ~90 KB); refuse absurd lengths early.
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorInfo {
  dtype: DType;
  shape: number[];
  /** Byte range within the data section. */
  begin: number;
  end: number;
}

export class SafetensorsError extends Error {
  constructor(path: string, message: string) {
    super(`${basename(path)}: ${message}`);
    this.name = 'SafetensorsError';
  }
}

/** An open safetensors file: the parsed, validated header; tensors are read on demand. */
export class SafetensorsFile {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  private readonly dataStart: number;

  private constructor(
    readonly path: string,
    tensors: Map<string, TensorInfo>,
    metadata: Record<string, string>,
    dataStart: number,
  ) {
    this.tensors = tensors;
    this.metadata = metadata;
    this.dataStart = dataStart;
  }

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw new SafetensorsError(path, `cannot open (${(err as Error).message})`);
    }
    try {
      const fileSize = fstatSync(fd).size;
      if (fileSize < 8)
        throw new SafetensorsError(
          path,
          `file is ${fileSize} bytes, too short for a safetensors header`,
        );
      const lenBuf = Buffer.alloc(8);
      readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = lenBuf.readBigUInt64LE(0);
      if (headerLen > BigInt(Math.min(MAX_HEADER_BYTES, fileSize - 8))) {
        throw new SafetensorsError(
          path,
          `header length ${headerLen} runs past the end of the file (${fileSize} bytes): truncated or not a safetensors file`,
        );
      }
      const n = Number(headerLen);
      const headerBuf = Buffer.alloc(n);
      if (readSync(fd, headerBuf, 0, n, 8) !== n)
        throw new SafetensorsError(path, 'short read of the header');
      let header: unknown;
      try {
        header = JSON.parse(headerBuf.toString('utf8'));
      } catch (err) {
        throw new SafetensorsError(path, `header is not valid JSON (${(err as Error).message})`);
      }
      if (header === null || typeof header !== 'object' || Array.isArray(header)) {
        throw new SafetensorsError(path, 'header is not a JSON object');
      }
      const dataStart = 8 + n;
      const dataSize = fileSize - dataStart;
      const tensors = new Map<string, TensorInfo>();
      let metadata: Record<string, string> = {};
      for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
        if (name === '__metadata__') {
          metadata = parseMetadata(path, raw);
          continue;
        }
        tensors.set(name, parseEntry(path, name, raw, dataSize));
      }
      return new SafetensorsFile(path, tensors, metadata, dataStart);
    } finally {
      closeSync(fd);
    }
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (info === undefined) throw new SafetensorsError(this.path, `has no tensor named ${name}`);
    return info;
  }

  /** Reads one tensor (CPU, the file's dtype). */
  tensor(name: string): Tensor {
    const info = this.info(name);
    try {
      return fromFile(this.path, this.dataStart + info.begin, info.shape, info.dtype);
    } catch (err) {
      throw new SafetensorsError(this.path, `reading ${name}: ${(err as Error).message}`);
    }
  }

  /** Reads every tensor (or those a filter keeps) into a Map. */
  loadAll(filter?: (name: string) => boolean): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const name of this.tensors.keys())
      if (!filter || filter(name)) out.set(name, this.tensor(name));
    return out;
  }
}

function parseMetadata(path: string, raw: unknown): Record<string, string> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SafetensorsError(path, '__metadata__ must be an object of strings');
  }
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string')
      throw new SafetensorsError(path, `__metadata__.${k} is not a string`);
  }
  return raw as Record<string, string>;
}

function parseEntry(path: string, name: string, raw: unknown, dataSize: number): TensorInfo {
  const entry = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (entry === null || typeof entry !== 'object')
    throw new SafetensorsError(path, `entry ${name} is not an object`);
  const dtype = typeof entry.dtype === 'string' ? FILE_DTYPES[entry.dtype] : undefined;
  if (dtype === undefined) {
    throw new SafetensorsError(
      path,
      `tensor ${name} has unsupported dtype ${String(entry.dtype)} (supported: ${Object.keys(FILE_DTYPES).join(', ')})`,
    );
  }
  const shape = entry.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(
      path,
      `tensor ${name} has an invalid shape ${JSON.stringify(shape)}`,
    );
  }
  const offsets = entry.data_offsets;
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
  ) {
    throw new SafetensorsError(
      path,
      `tensor ${name} has invalid data_offsets ${JSON.stringify(offsets)}`,
    );
  }
  const [begin, end] = offsets as [number, number];
  const expected = (shape as number[]).reduce((a, b) => a * b, 1) * ITEM_SIZE[dtype];
  if (end < begin || end - begin !== expected) {
    throw new SafetensorsError(
      path,
      `tensor ${name}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype}[${shape.join(', ')}] needs ${expected}`,
    );
  }
  if (end > dataSize) {
    throw new SafetensorsError(
      path,
      `tensor ${name}: data_offsets end at ${end} but the data section has only ${dataSize} bytes (truncated file?)`,
    );
  }
  return { dtype, shape: shape as number[], begin, end };
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}

/** Reads a whole safetensors file into a Map of CPU tensors. */
export function loadSafetensors(path: string): Map<string, Tensor> {
  return SafetensorsFile.open(path).loadAll();
}

/**
 * Refuses what the reader (SafetensorsFile.open) could not read back: a tensor named
 * `__metadata__` (the header's metadata slot), a value that is not a Tensor, metadata values
 * that are not strings.
 */
function checkWritable(
  path: string,
  entries: readonly (readonly [string, unknown])[],
  metadata: Record<string, unknown>,
): void {
  for (const [name, t] of entries) {
    if (name === '__metadata__')
      throw new SafetensorsError(
        path,
        'not written: a tensor is named __metadata__, the header key safetensors keeps for metadata; rename the tensor',
      );
    if (!(t instanceof Tensor))
      throw new SafetensorsError(path, `not written: ${name} is not a Tensor`);
  }
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string')
      throw new SafetensorsError(
        path,
        `not written: metadata ${key} is ${typeof value}, but safetensors metadata holds strings only (JSON.stringify it)`,
      );
  }
}

/**
 * Writes tensors to a safetensors file atomically: a temporary file in the same folder, fsync,
 * then rename, so a crash never leaves a half-written file under the final name.
 */
export function saveSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata: Record<string, string> = {},
): void {
  const entries = [...(tensors instanceof Map ? tensors : Object.entries(tensors))].sort(
    ([a], [b]) => (a < b ? -1 : a > b ? 1 : 0),
  );
  checkWritable(path, entries, metadata);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    const nbytes = t.numel * ITEM_SIZE[t.dtype];
    header[name] = {
      dtype: DTYPE_CODES[t.dtype],
      shape: [...t.shape],
      data_offsets: [offset, offset + nbytes],
    };
    offset += nbytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  if (json.length > MAX_HEADER_BYTES)
    throw new SafetensorsError(
      path,
      `not written: its header would be ${json.length} bytes, over the ${MAX_HEADER_BYTES} this reader accepts (shorter names or fewer tensors per file)`,
    );
  const pad = (8 - (json.length % 8)) % 8; // keep the data section 8-byte aligned
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeAll(fd, len);
    writeAll(fd, json);
    for (const [, t] of entries) writeAll(fd, new Uint8Array(native.toBuffer(t.handle)));
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    try {
      unlinkSync(tmp);
    } catch {
      // nothing to clean up
    }
    throw err;
  }
}
