// Photo uploads (multipart field "photos"): each file is checked to be a JPEG, PNG or WebP by its
// bytes — never by its name or the client's content type — decoded as the project reads images
// (readImage: EXIF orientation applied, alpha dropped, CMYK as Pillow), scaled down so its longer
// side is at most LIMITS.maxPhotoSide, and stored as PNG. Points are then clicked on the photo as
// stored, so the browser, the masks and training all see the same pixels.
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { FastifyRequest } from 'fastify';
import sharp from 'sharp';
import { readImage, writePng, type RgbImage } from '../../src/io/image.js';
import { LIMITS, type Photo, type Subject } from './api.js';
import { badRequest, HttpError } from './errors.js';
import { newId } from './ids.js';
import { checkRoom, type SubjectStore } from './subjects.js';

/** The multipart field the files come in. */
export const PHOTO_FIELD = 'photos';
/** A larger photo is refused before it is decoded (its pixels alone would take gigabytes). */
const MAX_INPUT_PIXELS = 50_000_000;

type ImageFormat = 'jpeg' | 'png' | 'webp';

/** The format its first bytes say, or null for anything else. */
export function sniffFormat(bytes: Uint8Array): ImageFormat | null {
  const starts = (sig: number[], at = 0) => sig.every((b, i) => bytes[at + i] === b);
  if (starts([0xff, 0xd8, 0xff])) return 'jpeg';
  if (starts([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (starts([0x52, 0x49, 0x46, 0x46]) && starts([0x57, 0x45, 0x42, 0x50], 8)) return 'webp';
  return null;
}

const unsupported = (name: string, why: string): HttpError =>
  new HttpError(415, `${name} is not a photo p3s takes (JPEG, PNG or WebP): ${why}`);

/** The file's name for display: no folders, no control characters, at most 100 characters. */
function displayName(filename: string | undefined, index: number): string {
  const clean = basename((filename ?? '').replace(/\\/g, '/')).replace(
    /[\u0000-\u001f\u007f]/g,
    '',
  );
  return clean.slice(0, 100) || `photo-${index + 1}`;
}

interface Upload {
  name: string;
  bytes: Buffer;
}

/**
 * The request's files, read whole: the multipart limits cap their size (413), and the count is
 * checked against the subject's room as they come (400), so no more than one file too many is read.
 */
async function readUploads(request: FastifyRequest, subject: Subject): Promise<Upload[]> {
  if (!request.isMultipart())
    throw new HttpError(
      415,
      `Expected a multipart/form-data body with the photos in "${PHOTO_FIELD}"`,
    );
  const uploads: Upload[] = [];
  const parts = request.parts({
    limits: { fileSize: LIMITS.maxUploadBytes, files: LIMITS.maxPhotos + 1, fields: 8, parts: 32 },
  });
  for await (const part of parts) {
    if (part.type !== 'file') continue;
    if (part.fieldname !== PHOTO_FIELD) {
      part.file.resume(); // drained, so the request ends
      throw badRequest(
        `Unexpected file field "${part.fieldname}": send photos in "${PHOTO_FIELD}"`,
      );
    }
    if (uploads.length === LIMITS.maxPhotos - subject.photos.length) {
      part.file.resume();
      checkRoom(subject, uploads.length + 1);
    }
    uploads.push({
      name: displayName(part.filename, uploads.length),
      bytes: await part.toBuffer(),
    });
  }
  if (uploads.length === 0)
    throw badRequest(`Expected 1 to ${LIMITS.maxPhotos} files in "${PHOTO_FIELD}"`);
  return uploads;
}

/** Checks the bytes are a whole JPEG/PNG/WebP of a sensible size before decoding them. */
async function checkUpload({ name, bytes }: Upload): Promise<void> {
  const format = sniffFormat(bytes);
  if (!format) throw unsupported(name, 'its content is not one of these formats');
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes).metadata();
  } catch (err) {
    throw unsupported(name, `it cannot be read (${(err as Error).message})`);
  }
  if (meta.format !== format)
    throw unsupported(name, `it starts as ${format} but decodes as ${String(meta.format)}`);
  const { width = 0, height = 0 } = meta;
  if (width * height > MAX_INPUT_PIXELS)
    throw badRequest(
      `${name} is ${width}×${height} px: at most ${MAX_INPUT_PIXELS / 1e6} megapixels are taken`,
    );
}

/** Decodes the upload upright (readImage on a temporary copy), refusing photos too small to mask. */
async function decodeUpload(upload: Upload, tmpDir: string): Promise<RgbImage> {
  const tmp = join(tmpDir, `.upload-${randomBytes(6).toString('hex')}`);
  writeFileSync(tmp, upload.bytes);
  let image: RgbImage;
  try {
    image = await readImage(tmp);
  } catch (err) {
    throw unsupported(upload.name, (err as Error).message.replace(tmp, 'the file'));
  } finally {
    rmSync(tmp, { force: true });
  }
  if (Math.min(image.width, image.height) < LIMITS.minPhotoSide)
    throw badRequest(
      `${upload.name} is ${image.width}×${image.height} px: photos need at least ${LIMITS.minPhotoSide} px on each side`,
    );
  return image;
}

/** The image with its longer side at most LIMITS.maxPhotoSide (Lanczos), unchanged when it fits. */
export async function fitPhoto(image: RgbImage): Promise<RgbImage> {
  const max = LIMITS.maxPhotoSide;
  if (Math.max(image.width, image.height) <= max) return image;
  const { data, info } = await sharp(image.data, {
    raw: { width: image.width, height: image.height, channels: 3 },
  })
    .resize({ width: max, height: max, fit: 'inside', kernel: 'lanczos3' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
}

/**
 * Reads the request's photos, checks every one before storing any (a bad file adds nothing),
 * stores them, and returns the subject with them.
 */
export async function receivePhotos(request: FastifyRequest, store: SubjectStore, sid: string) {
  const subject = store.get(sid);
  checkRoom(subject, 1);
  const uploads = await readUploads(request, subject);
  checkRoom(store.get(sid), uploads.length);
  for (const upload of uploads) await checkUpload(upload);
  const dir = store.photosDir(sid);
  const images: RgbImage[] = [];
  for (const upload of uploads) images.push(await fitPhoto(await decodeUpload(upload, dir)));
  const photos: Photo[] = [];
  try {
    for (let i = 0; i < uploads.length; i++) {
      const id = newId('p');
      const { width, height } = images[i]!;
      await writePng(store.photoPath(sid, id), images[i]!);
      photos.push({ id, name: uploads[i]!.name, width, height, positive: [], negative: [] });
    }
    return store.addPhotos(sid, photos);
  } catch (err) {
    for (const p of photos) rmSync(store.photoPath(sid, p.id), { force: true });
    throw err;
  }
}
