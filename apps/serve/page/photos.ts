// Section 1: the subject's photos as thumbnails and one large on a canvas, where a left click
// marks the subject (positive point) and a right click a look-alike (negative point); a click on
// an existing mark removes it. The masks the server made are tinted over the photo (subject
// green, look-alike red), or the filled photo is shown instead.
import { LIMITS, type MaskPreview, type Photo, type PhotoMask, type Subject } from '../api.js';
import { seg, withToken } from './client.js';
import { byId, h } from './dom.js';
import { showError } from './notice.js';

export type PointKind = 'positive' | 'negative';

const MAX_STAGE_HEIGHT = 480;
/** Radius of a drawn mark, and how near (CSS px) a click must be to remove one. */
const MARK_RADIUS = 9;
const HIT_RADIUS = 13;
const SUBJECT_RGB = [40, 200, 80] as const;
const LOOKALIKE_RGB = [230, 60, 50] as const;

export function photoUrl(subjectId: string, photoId: string): string {
  return withToken(`/api/subjects/${seg(subjectId)}/photos/${seg(photoId)}`);
}

const images = new Map<string, Promise<HTMLImageElement>>();

function loadImage(url: string): Promise<HTMLImageElement> {
  let p = images.get(url);
  if (!p) {
    p = new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error(`could not load the image ${url.replace(/\?.*/, '')}`));
      img.src = url;
    });
    images.set(url, p);
    p.catch(() => images.delete(url));
  }
  return p;
}

const tints = new Map<string, Promise<HTMLCanvasElement>>();

/** The mask (white on black) as a see-through layer of one colour. */
function tintedMask(url: string, rgb: readonly number[]): Promise<HTMLCanvasElement> {
  const key = `${rgb.join(',')}|${url}`;
  let p = tints.get(key);
  if (!p) {
    p = loadImage(url).then((img) => {
      const c = document.createElement('canvas');
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const ctx = c.getContext('2d');
      if (!ctx) throw new Error('no 2D canvas in this browser');
      ctx.drawImage(img, 0, 0);
      const px = ctx.getImageData(0, 0, c.width, c.height);
      const d = px.data;
      const { width: w, height: h } = c;
      const on = new Uint8Array(w * h);
      for (let i = 0; i < on.length; i++)
        on[i] = d[4 * i]! + d[4 * i + 1]! + d[4 * i + 2]! > 384 ? 1 : 0;
      const inside = (x: number, y: number): boolean =>
        x >= 0 && y >= 0 && x < w && y < h && on[y * w + x] === 1;
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const i = y * w + x;
          // the mask's edge nearly solid, so it shows on any colour; the inside see-through
          const edge =
            on[i] === 1 &&
            !(inside(x - 1, y) && inside(x + 1, y) && inside(x, y - 1) && inside(x, y + 1));
          d.set([rgb[0]!, rgb[1]!, rgb[2]!, edge ? 210 : on[i] ? 110 : 0], 4 * i);
        }
      }
      ctx.putImageData(px, 0, 0);
      return c;
    });
    tints.set(key, p);
    p.catch(() => tints.delete(key));
  }
  return p;
}

export interface PhotoEditorEvents {
  /** The person changed a photo's points (already changed on the photo object). */
  pointsChanged(photo: Photo): void;
  /** The person asked to delete a photo. */
  deletePhoto(photo: Photo): void;
  /** The person dropped or picked files. */
  addFiles(files: File[]): void;
}

export class PhotoEditor {
  private subject: Subject | null = null;
  private selected = 0;
  private masks = new Map<string, PhotoMask>();
  private millis: number | null = null;
  private maskState: 'none' | 'busy' | 'ready' = 'none';
  private drawSeq = 0;
  /** CSS px per photo px, as last drawn. */
  private scale = 1;

  private readonly canvas = byId<HTMLCanvasElement>('canvas');
  private readonly thumbs = byId('thumbs');
  private readonly points = byId('points');
  private readonly info = byId('mask-info');
  private readonly empty = byId('stage-empty');
  private readonly showMask = byId<HTMLInputElement>('show-mask');
  private readonly showFilled = byId<HTMLInputElement>('show-filled');

  constructor(private readonly events: PhotoEditorEvents) {
    this.canvas.addEventListener('click', (e) => {
      if (e.button !== 0) return;
      this.clickAt(e.offsetX, e.offsetY, this.mode());
    });
    this.canvas.addEventListener('contextmenu', (e) => {
      e.preventDefault();
      this.clickAt(e.offsetX, e.offsetY, 'negative');
    });
    this.showMask.addEventListener('change', () => this.draw());
    this.showFilled.addEventListener('change', () => this.draw());
    window.addEventListener('resize', () => this.draw());
    this.wireDrop();
  }

  private mode(): PointKind {
    const checked = document.querySelector<HTMLInputElement>('input[name="mode"]:checked');
    return checked?.value === 'negative' ? 'negative' : 'positive';
  }

  private wireDrop(): void {
    const drop = byId('drop');
    const input = byId<HTMLInputElement>('file-input');
    input.addEventListener('change', () => {
      const files = [...(input.files ?? [])];
      input.value = '';
      if (files.length) this.events.addFiles(files);
    });
    drop.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        input.click();
      }
    });
    for (const name of ['dragenter', 'dragover'] as const)
      drop.addEventListener(name, (e) => {
        e.preventDefault();
        drop.classList.add('over');
      });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      const files = [...(e.dataTransfer?.files ?? [])];
      if (files.length) this.events.addFiles(files);
    });
  }

  get current(): Photo | null {
    return this.subject?.photos[this.selected] ?? null;
  }

  setSubject(subject: Subject | null): void {
    const keep = this.current?.id;
    const changedSubject = subject?.id !== this.subject?.id;
    this.subject = subject;
    if (changedSubject) {
      this.masks.clear();
      this.millis = null;
      this.maskState = 'none';
    }
    const photos = subject?.photos ?? [];
    const again = photos.findIndex((p) => p.id === keep);
    this.selected = again >= 0 ? again : Math.min(this.selected, Math.max(0, photos.length - 1));
    for (const id of [...this.masks.keys()])
      if (!photos.some((p) => p.id === id)) this.masks.delete(id);
    this.render();
  }

  select(index: number): void {
    this.selected = index;
    this.render();
  }

  masksBusy(): void {
    this.maskState = 'busy';
    this.renderInfo();
  }

  setMasks(preview: MaskPreview | null): void {
    this.masks.clear();
    for (const m of preview?.photos ?? []) this.masks.set(m.photoId, m);
    this.millis = preview?.millis ?? null;
    this.maskState = preview ? 'ready' : 'none';
    this.render();
  }

  /** Whether some photo has a positive point (the masks need one). */
  hasClicks(): boolean {
    return this.subject?.photos.some((p) => p.positive.length > 0) ?? false;
  }

  render(): void {
    this.renderThumbs();
    this.renderPoints();
    this.renderInfo();
    this.draw();
  }

  private renderThumbs(): void {
    const subject = this.subject;
    this.thumbs.replaceChildren();
    if (!subject) return;
    subject.photos.forEach((photo, i) => {
      const mask = this.masks.get(photo.id);
      const src = mask?.layers.overlay
        ? withToken(mask.layers.overlay)
        : photoUrl(subject.id, photo.id);
      const pick = h(
        'button',
        {
          type: 'button',
          class: 'thumb',
          title: photo.name,
          'aria-label': `photo ${i + 1}: ${photo.name}`,
          'aria-pressed': i === this.selected ? 'true' : 'false',
        },
        h('img', { src, alt: photo.name, draggable: 'false', class: mask ? 'masked' : null }),
      );
      pick.addEventListener('click', () => this.select(i));
      const remove = h('button', {
        type: 'button',
        class: 'thumb-remove',
        title: `delete ${photo.name}`,
        'aria-label': `delete photo ${i + 1}`,
        text: '×',
      });
      remove.addEventListener('click', () => this.events.deletePhoto(photo));
      const counts = h(
        'span',
        { class: 'counts' },
        photo.positive.length ? h('span', { class: 'pos', text: `+${photo.positive.length}` }) : '',
        photo.negative.length ? h('span', { class: 'neg', text: `−${photo.negative.length}` }) : '',
        mask?.propagated
          ? h('span', {
              class: 'prop',
              text: 'auto',
              title: 'mask from the clicks on other photos',
            })
          : '',
      );
      this.thumbs.append(
        h('li', { class: i === this.selected ? 'selected' : null }, pick, counts, remove),
      );
    });
  }

  private renderPoints(): void {
    const photo = this.current;
    this.points.replaceChildren();
    if (!photo) return;
    const row = (kind: PointKind, k: number): HTMLElement => {
      const [x, y] = photo[kind][k]!;
      const remove = h('button', {
        type: 'button',
        class: 'link',
        text: 'remove',
        'aria-label': `remove ${kind === 'positive' ? 'subject' : 'look-alike'} point ${k + 1}`,
      });
      remove.addEventListener('click', () => this.removePoint(kind, k));
      return h(
        'li',
        { class: kind === 'positive' ? 'pos' : 'neg' },
        h('span', { class: 'mark', text: kind === 'positive' ? '+' : '×' }),
        `${kind === 'positive' ? 'subject' : 'look-alike'} at (${Math.round(x)}, ${Math.round(y)}) `,
        remove,
      );
    };
    const items = [
      ...photo.positive.map((_, k) => row('positive', k)),
      ...photo.negative.map((_, k) => row('negative', k)),
    ];
    this.points.append(
      h('h3', { text: `Clicks on ${photo.name}` }),
      items.length
        ? h('ul', {}, ...items)
        : h('p', { class: 'hint', text: 'None yet: click the subject in the large photo.' }),
    );
  }

  private renderInfo(): void {
    const photo = this.current;
    const parts: string[] = [];
    if (!this.subject?.photos.length) parts.push('');
    else if (this.maskState === 'busy') parts.push('making masks…');
    else if (!this.hasClicks()) parts.push('Masks appear after a click on the subject.');
    else if (this.maskState === 'ready' && this.millis !== null) {
      parts.push(`masks made in ${Math.round(this.millis)} ms on the server`);
      const mask = photo ? this.masks.get(photo.id) : undefined;
      if (mask) {
        parts.push(`subject ${(mask.subjectShare * 100).toFixed(1)} % of this photo`);
        if (mask.propagated) parts.push("found from the other photos' clicks");
      }
    }
    this.info.textContent = parts.join(' · ');
    this.info.dataset.state = this.maskState;
  }

  private removePoint(kind: PointKind, k: number): void {
    const photo = this.current;
    if (!photo) return;
    photo[kind].splice(k, 1);
    this.render();
    this.events.pointsChanged(photo);
  }

  private clickAt(cssX: number, cssY: number, kind: PointKind): void {
    const photo = this.current;
    if (!photo) return;
    // a click on (or next to) a mark removes it
    for (const k of ['positive', 'negative'] as const) {
      const i = photo[k].findIndex(
        ([x, y]) =>
          Math.hypot((x + 0.5) * this.scale - cssX, (y + 0.5) * this.scale - cssY) <= HIT_RADIUS,
      );
      if (i >= 0) {
        this.removePoint(k, i);
        return;
      }
    }
    if (photo[kind].length >= LIMITS.maxPoints) {
      showError(`At most ${LIMITS.maxPoints} points of a kind on one photo.`);
      return;
    }
    // the pixel under the pointer
    const x = Math.min(photo.width - 1, Math.max(0, Math.floor(cssX / this.scale)));
    const y = Math.min(photo.height - 1, Math.max(0, Math.floor(cssY / this.scale)));
    photo[kind].push([x, y]);
    this.render();
    this.events.pointsChanged(photo);
  }

  /** Draws the selected photo (or its filled version), the mask tints and the marks. */
  draw(): void {
    const seq = ++this.drawSeq;
    const subject = this.subject;
    const photo = this.current;
    this.empty.hidden = !!photo;
    this.canvas.hidden = !photo;
    if (!subject || !photo) return;
    const mask = this.masks.get(photo.id);
    const filled = this.showFilled.checked && mask?.layers.filled;
    const base = filled ? withToken(filled) : photoUrl(subject.id, photo.id);
    const tintUrls: [string, readonly number[]][] = [];
    if (!filled && this.showMask.checked && mask) {
      if (mask.layers.distractor) tintUrls.push([withToken(mask.layers.distractor), LOOKALIKE_RGB]);
      if (mask.layers.subject) tintUrls.push([withToken(mask.layers.subject), SUBJECT_RGB]);
    }
    Promise.all([loadImage(base), ...tintUrls.map(([u, rgb]) => tintedMask(u, rgb))])
      .then(([img, ...layers]) => {
        if (seq !== this.drawSeq) return;
        this.paint(photo, img as HTMLImageElement, layers as HTMLCanvasElement[]);
      })
      .catch((err: unknown) => showError(err, 'show the photo'));
  }

  private paint(photo: Photo, img: HTMLImageElement, layers: HTMLCanvasElement[]): void {
    const box = this.canvas.parentElement?.clientWidth || 560;
    const scale = Math.min(box / photo.width, MAX_STAGE_HEIGHT / photo.height);
    const cssW = Math.max(1, Math.round(photo.width * scale));
    const cssH = Math.max(1, Math.round(photo.height * scale));
    this.scale = cssW / photo.width;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.style.width = `${cssW}px`;
    this.canvas.style.height = `${cssH}px`;
    this.canvas.width = Math.round(cssW * dpr);
    this.canvas.height = Math.round(cssH * dpr);
    const ctx = this.canvas.getContext('2d');
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    // small photos (the toy world's 64 px) enlarged as pixels, large ones smoothed
    ctx.imageSmoothingEnabled = this.scale < 2;
    ctx.drawImage(img, 0, 0, cssW, cssH);
    for (const layer of layers) ctx.drawImage(layer, 0, 0, cssW, cssH);
    for (const [x, y] of photo.positive) this.mark(ctx, x, y, 'positive');
    for (const [x, y] of photo.negative) this.mark(ctx, x, y, 'negative');
  }

  private mark(ctx: CanvasRenderingContext2D, px: number, py: number, kind: PointKind): void {
    const x = (px + 0.5) * this.scale;
    const y = (py + 0.5) * this.scale;
    const r = MARK_RADIUS;
    const colour = kind === 'positive' ? 'rgb(40,200,80)' : 'rgb(230,60,50)';
    ctx.save();
    ctx.lineCap = 'round';
    ctx.fillStyle = 'rgba(0,0,0,0.35)';
    ctx.beginPath();
    ctx.arc(x, y, r, 0, Math.PI * 2);
    ctx.fill();
    ctx.lineWidth = 5;
    ctx.strokeStyle = 'white';
    ctx.stroke();
    ctx.lineWidth = 3;
    ctx.strokeStyle = colour;
    ctx.stroke();
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = 'white';
    ctx.beginPath();
    const a = r * 0.5;
    if (kind === 'positive') {
      ctx.moveTo(x - a, y);
      ctx.lineTo(x + a, y);
      ctx.moveTo(x, y - a);
      ctx.lineTo(x, y + a);
    } else {
      ctx.moveTo(x - a, y - a);
      ctx.lineTo(x + a, y + a);
      ctx.moveTo(x + a, y - a);
      ctx.lineTo(x - a, y + a);
    }
    ctx.stroke();
    ctx.restore();
  }
}
