// Small DOM helpers: one element with attributes and children, and a typed lookup by id.

type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | null | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') el.className = String(value);
    else if (name === 'text') el.textContent = String(value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  if (el instanceof HTMLImageElement) pixelIfSmall(el);
  return el;
}

/** Small images (the toy world's 64 px) are enlarged as pixels rather than blurred. */
function pixelIfSmall(img: HTMLImageElement): void {
  const check = (): void => {
    img.classList.toggle('pixel', img.naturalWidth > 0 && img.naturalWidth < 256);
  };
  img.addEventListener('load', check);
  if (img.complete) check();
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id} element`);
  return el as T;
}

/** "1 min 20 s", "45 s", "2 h 3 min". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function timeOf(iso: string | null): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

const kept = new Map<string, HTMLImageElement>();

/**
 * An <img> for a URL that the page redraws often (sample sheets, results): the same element each
 * time, so a redraw neither reloads nor flickers it.
 */
export function keptImg(src: string, attrs: Record<string, string> = {}): HTMLImageElement {
  let img = kept.get(src);
  if (!img) {
    img = h('img', { src, ...attrs });
    kept.set(src, img);
  }
  return img;
}
