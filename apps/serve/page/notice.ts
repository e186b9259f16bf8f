// The message area: errors stay until the person closes them, notes go away by themselves.
import { RequestError } from './client.js';

const MAX_SHOWN = 5;

function area(): HTMLElement {
  const el = document.getElementById('messages');
  if (!el) throw new Error('the page has no #messages element');
  return el;
}

function show(kind: 'error' | 'note', text: string, ttlMs: number | null): void {
  const box = area();
  // the same message twice in a row shows once, with a count
  const last = box.lastElementChild as HTMLElement | null;
  if (last && last.dataset.text === text && last.dataset.kind === kind) {
    const n = Number(last.dataset.count ?? '1') + 1;
    last.dataset.count = String(n);
    const count = last.querySelector('.count');
    if (count) count.textContent = `×${n}`;
    return;
  }
  const item = document.createElement('div');
  item.className = `message ${kind}`;
  item.dataset.kind = kind;
  item.dataset.text = text;
  if (kind === 'error') item.setAttribute('role', 'alert');
  const body = document.createElement('span');
  body.textContent = text;
  const count = document.createElement('span');
  count.className = 'count';
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'close';
  close.textContent = '×';
  close.title = 'dismiss';
  close.addEventListener('click', () => item.remove());
  item.append(body, count, close);
  box.append(item);
  while (box.children.length > MAX_SHOWN) box.firstElementChild?.remove();
  if (ttlMs !== null) setTimeout(() => item.remove(), ttlMs);
}

/** Shows what went wrong, in the server's words when the server said it. */
export function showError(err: unknown, doing?: string): void {
  let text: string;
  if (err instanceof RequestError)
    text = err.statusCode ? `${err.message} (HTTP ${err.statusCode})` : err.message;
  else if (err instanceof Error) text = err.message;
  else text = String(err);
  show('error', doing ? `Could not ${doing}: ${text}` : text, null);
}

export function showNote(text: string): void {
  show('note', text, 4000);
}

/** Runs an action of the person's, showing its error instead of losing it. */
export async function attempt<T>(doing: string, action: () => Promise<T>): Promise<T | undefined> {
  try {
    return await action();
  } catch (err) {
    showError(err, doing);
    return undefined;
  }
}
