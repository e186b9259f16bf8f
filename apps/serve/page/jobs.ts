// Jobs on the page: the subject's jobs kept up to date from the server's event stream
// (/api/events), each training run shown with its progress, loss curve, time left, sample
// sheets and a Cancel button.
import { FINISHED_STATES, type JobState } from '../../../src/jobs/job.js';
import type { JobEvent, JobRecord } from '../api.js';
import { api, jobFileUrl, seg, withToken } from './client.js';
import { byId, duration, h, keptImg, timeOf } from './dom.js';
import { attempt, showError } from './notice.js';

export const isFinished = (state: JobState): boolean => FINISHED_STATES.includes(state);

/** The subject's jobs by id, and the losses heard for each training run. */
export class JobStore {
  readonly jobs = new Map<string, JobRecord>();
  readonly losses = new Map<string, [number, number][]>();
  private owner: string | null = null;
  private readonly listeners: ((job: JobRecord | null) => void)[] = [];

  /** Calls listener after every change, with the job an event brought (null: a reload). */
  onChange(listener: (job: JobRecord | null) => void): void {
    this.listeners.push(listener);
  }

  private changed(job: JobRecord | null): void {
    for (const l of this.listeners) l(job);
  }

  /** Shows the owner's jobs: fetched now, then kept up to date by events. */
  async load(owner: string | null): Promise<void> {
    if (owner !== this.owner) {
      this.jobs.clear();
      this.losses.clear();
    }
    this.owner = owner;
    if (owner === null) {
      this.changed(null);
      return;
    }
    const list = await api.get<JobRecord[]>(`/api/jobs?subject=${seg(owner)}`);
    if (owner !== this.owner) return;
    for (const job of list) this.put(job);
    this.changed(null);
    for (const job of list)
      if (job.input.kind === 'train' && job.progress && (this.losses.get(job.id)?.length ?? 0) <= 1)
        void this.readLossLog(job);
  }

  /** Newest first, of a kind. */
  list(kind: JobRecord['input']['kind']): JobRecord[] {
    return [...this.jobs.values()]
      .filter((j) => j.input.kind === kind)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
  }

  put(job: JobRecord): void {
    this.jobs.set(job.id, job);
    const p = job.progress;
    if (job.input.kind === 'train' && p && typeof p.loss === 'number' && Number.isFinite(p.loss)) {
      const curve = this.losses.get(job.id) ?? [];
      const last = curve[curve.length - 1];
      if (!last || p.done > last[0]) curve.push([p.done, p.loss]);
      this.losses.set(job.id, curve);
    }
  }

  event(ev: JobEvent): void {
    if (!ev.job || ev.job.owner !== this.owner || ev.job.input.kind === 'mask') return;
    this.put(ev.job);
    this.changed(ev.job);
  }

  /**
   * The loss curve of a run that started before the page opened, from its train-log.jsonl. The
   * log is a nicety: when the server does not hand it out the curve starts from now.
   */
  private async readLossLog(job: JobRecord): Promise<void> {
    const res = await fetch(jobFileUrl(job.id, 'train-log.jsonl')).catch(() => null);
    if (!res || !res.ok) return;
    const text = await res.text();
    const curve: [number, number][] = [];
    for (const line of text.split('\n')) {
      try {
        const row = JSON.parse(line) as { step?: unknown; loss?: unknown };
        if (typeof row.step === 'number' && typeof row.loss === 'number')
          curve.push([row.step, row.loss]);
      } catch {
        // a torn last line while the run writes it
      }
    }
    const known = this.losses.get(job.id) ?? [];
    const first = known[0]?.[0] ?? Infinity;
    this.losses.set(job.id, [...curve.filter(([s]) => s < first), ...known]);
    this.changed(null);
  }
}

/** Listens to /api/events, reconnecting as EventSource does; tells when it is (re)connected. */
export function listen(onEvent: (ev: JobEvent) => void, onOpen: () => void): void {
  const live = byId('live');
  const source = new EventSource(withToken('/api/events'));
  const handle = (e: MessageEvent<string>): void => {
    let ev: JobEvent;
    try {
      ev = JSON.parse(e.data) as JobEvent;
    } catch {
      return; // a comment or keep-alive
    }
    if (ev && typeof ev === 'object' && ev.job) onEvent(ev);
  };
  source.onmessage = handle;
  for (const type of ['submitted', 'started', 'progress', 'finished'])
    source.addEventListener(type, handle as EventListener);
  source.onopen = () => {
    live.textContent = 'live';
    live.className = 'live on';
    onOpen();
  };
  source.onerror = () => {
    live.textContent = source.readyState === EventSource.CLOSED ? 'offline' : 'reconnecting…';
    live.className = 'live off';
    if (source.readyState === EventSource.CLOSED)
      showError('The live updates stopped (the server closed /api/events); reload the page.');
  };
}

const SVG = 'http://www.w3.org/2000/svg';

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
  text?: string,
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** The loss by step as a polyline, with its range written at the left. */
export function lossCurve(points: [number, number][], totalSteps: number): SVGSVGElement {
  const W = 320;
  const H = 90;
  const L = 44;
  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    class: 'loss',
    role: 'img',
    'aria-label': 'training loss by step',
  });
  root.append(svg('rect', { x: L, y: 4, width: W - L - 4, height: H - 20, class: 'frame' }));
  if (points.length === 0) {
    root.append(svg('text', { x: L + 8, y: H / 2, class: 'axis' }, 'no loss yet'));
    return root;
  }
  const losses = points.map(([, l]) => l);
  let lo = Math.min(...losses);
  let hi = Math.max(...losses);
  if (hi - lo < 1e-12) {
    hi += Math.abs(hi) * 0.05 + 1e-6;
    lo -= Math.abs(lo) * 0.05 + 1e-6;
  }
  const maxStep = Math.max(totalSteps, points[points.length - 1]![0], 1);
  const x = (s: number): number => L + ((W - L - 8) * s) / maxStep;
  const y = (l: number): number => 8 + ((H - 28) * (hi - l)) / (hi - lo);
  const line = (pts: [number, number][]): string =>
    pts.map(([s, l]) => `${x(s).toFixed(1)},${y(l).toFixed(1)}`).join(' ');
  // the raw loss jumps with the timestep drawn; a moving average shows the trend
  let avg = points[0]![1];
  const smooth = points.map(([s, l]): [number, number] => [s, (avg = 0.9 * avg + 0.1 * l)]);
  root.append(
    svg('text', { x: L - 4, y: 14, class: 'axis', 'text-anchor': 'end' }, hi.toPrecision(2)),
    svg('text', { x: L - 4, y: H - 20, class: 'axis', 'text-anchor': 'end' }, lo.toPrecision(2)),
    svg('text', { x: W - 6, y: H - 5, class: 'axis', 'text-anchor': 'end' }, `step ${maxStep}`),
    svg('text', { x: L, y: H - 5, class: 'axis' }, 'loss'),
    svg('polyline', { points: line(points), class: points.length > 5 ? 'curve raw' : 'curve' }),
    ...(points.length > 5 ? [svg('polyline', { points: line(smooth), class: 'curve' })] : []),
  );
  if (points.length === 1) {
    const [s, l] = points[0]!;
    root.append(svg('circle', { cx: x(s), cy: y(l), r: 2.5, class: 'dot' }));
  }
  return root;
}

export function stateBadge(state: JobState): HTMLElement {
  return h('span', { class: `badge ${state}`, text: state });
}

export function progressBar(job: JobRecord): HTMLElement {
  const p = job.progress;
  const share =
    job.state === 'succeeded' ? 1 : p && p.total > 0 ? Math.min(1, p.done / p.total) : 0;
  return h(
    'div',
    {
      class: 'bar',
      role: 'progressbar',
      'aria-valuemin': 0,
      'aria-valuemax': p?.total ?? 1,
      'aria-valuenow': p?.done ?? 0,
    },
    h('div', { style: `width: ${(share * 100).toFixed(1)}%` }),
  );
}

export function cancelButton(job: JobRecord, store: JobStore): HTMLElement | null {
  if (isFinished(job.state)) return null;
  const button = h('button', { type: 'button', class: 'cancel', text: 'Cancel' });
  button.addEventListener('click', async () => {
    button.setAttribute('disabled', '');
    button.textContent = 'Cancelling…';
    const record = await attempt('cancel the job', () =>
      api.post<JobRecord>(`/api/jobs/${seg(job.id)}/cancel`),
    );
    if (record) store.event({ type: 'finished', job: record });
    else button.removeAttribute('disabled');
  });
  return button;
}

/** "step 40/120 · loss 0.0712 · about 1 min 20 s left", from what the job reported. */
export function progressLine(job: JobRecord): string {
  const p = job.progress;
  if (job.state === 'queued') return 'waiting for its turn';
  if (!p) return job.state === 'running' ? 'starting…' : '';
  const parts = [p.message || `${p.done}/${p.total}`];
  if (!isFinished(job.state) && p.etaSeconds !== undefined && Number.isFinite(p.etaSeconds))
    parts.push(`about ${duration(p.etaSeconds)} left`);
  return parts.join(' · ');
}

function errorLine(job: JobRecord): HTMLElement | null {
  if (!job.error) return null;
  return h('p', {
    class: 'job-error',
    role: 'alert',
    text: `${job.error.name}: ${job.error.message}`,
  });
}

/** The settings a run was given that a person would recognise. */
function settingsLine(job: JobRecord): string {
  if (job.input.kind !== 'train') return '';
  const c = job.input.config;
  const parts: string[] = [];
  if (c.maxSteps != null) parts.push(`${c.maxSteps} steps`);
  else if (c.epochs != null) parts.push(`${c.epochs} epochs`);
  if (c.learningRate != null) parts.push(`lr ${c.learningRate}`);
  if (c.resolution != null) parts.push(`${c.resolution} px`);
  if (c.batchSize != null) parts.push(`batch ${c.batchSize}`);
  if (c.seed != null) parts.push(`seed ${c.seed}`);
  return parts.join(', ');
}

/** One training run: state, progress, loss curve, sample sheets, and its adapter when done. */
export function trainCard(job: JobRecord, store: JobStore): HTMLElement {
  const total = job.progress?.total ?? 0;
  const sheets = (job.progress?.files ?? []).filter((f) => /\.(png|jpe?g|webp)$/i.test(f));
  const settings = settingsLine(job);
  const card = h(
    'article',
    { class: `job train ${job.state}`, 'data-job': job.id, 'data-state': job.state },
    h(
      'header',
      {},
      h('b', { text: 'Training' }),
      stateBadge(job.state),
      h('time', { datetime: job.createdAt, text: timeOf(job.createdAt) }),
      settings ? h('span', { class: 'settings', text: settings }) : null,
      cancelButton(job, store),
    ),
    progressBar(job),
    h('p', { class: 'progress-line', text: progressLine(job) }),
    errorLine(job),
  );
  const body = h('div', { class: 'job-body' });
  if (job.progress || job.state === 'running')
    body.append(lossCurve(store.losses.get(job.id) ?? [], total));
  if (sheets.length) {
    body.append(
      h(
        'div',
        { class: 'sheets' },
        ...sheets
          .slice(-3)
          .map((name) =>
            h(
              'a',
              { href: jobFileUrl(job.id, name), target: '_blank', title: name },
              keptImg(jobFileUrl(job.id, name), { alt: `sample sheet ${name}`, class: 'sheet' }),
            ),
          ),
      ),
    );
  }
  if (body.childElementCount) card.append(body);
  if (job.state === 'succeeded')
    card.append(
      h(
        'p',
        { class: 'downloads' },
        h('a', {
          href: jobFileUrl(job.id, 'adapter.safetensors'),
          download: `adapter-${job.id}.safetensors`,
          class: 'download',
          text: '⬇ adapter.safetensors',
        }),
      ),
    );
  return card;
}

/** A generate job that is not done yet, or did not succeed. */
export function generateCard(job: JobRecord, store: JobStore): HTMLElement {
  return h(
    'article',
    { class: `job generate ${job.state}`, 'data-job': job.id, 'data-state': job.state },
    h(
      'header',
      {},
      h('b', { text: 'Generating' }),
      stateBadge(job.state),
      h('time', { datetime: job.createdAt, text: timeOf(job.createdAt) }),
      cancelButton(job, store),
    ),
    progressBar(job),
    h('p', { class: 'progress-line', text: progressLine(job) }),
    errorLine(job),
  );
}
