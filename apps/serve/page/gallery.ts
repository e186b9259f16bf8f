// Section 3's results: every generated image in the order made, with its prompt and seed, a
// download link for each, and the whole job's images as one archive.
import type { JobRecord, Subject } from '../api.js';
import { jobFileUrl, seg, withToken } from './client.js';
import { h, keptImg, timeOf } from './dom.js';

export interface GalleryImage {
  /** File name relative to the job's folder. */
  name: string;
  prompt: string;
  seed: number | null;
}

/** An image in a generate job's result (src/jobs/job_runs.ts): its file relative to the job's folder. */
interface ResultImage {
  file?: unknown;
  /** The library's absolute path, for results that carry it instead. */
  path?: unknown;
  prompt?: unknown;
  seed?: unknown;
}

function relativeTo(dir: string, path: string): string {
  const d = dir.replace(/\/+$/, '');
  if (path.startsWith(`${d}/`)) return path.slice(d.length + 1);
  return path.startsWith('/') ? path.slice(path.lastIndexOf('/') + 1) : path;
}

const isImage = (name: string): boolean =>
  /\.(png|jpe?g|webp)$/i.test(name) && !/(^|\/)contact-sheet\.png$/.test(name);

/**
 * The images a generate job made so far: from its result when it succeeded, else from the files
 * it reported, prompt by prompt as generateP3S writes them (image k of a prompt has seed n + k).
 */
export function generatedImages(job: JobRecord): GalleryImage[] {
  if (job.input.kind !== 'generate') return [];
  const result = job.result as { images?: ResultImage[] } | null | undefined;
  if (result && Array.isArray(result.images) && result.images.length) {
    return result.images.flatMap((im) => {
      const file = typeof im?.file === 'string' ? im.file : im?.path;
      if (typeof file !== 'string') return [];
      return [
        {
          name: relativeTo(job.dir, file),
          prompt: typeof im.prompt === 'string' ? im.prompt : '',
          seed: typeof im.seed === 'number' ? im.seed : null,
        },
      ];
    });
  }
  const c = job.input.config;
  const prompts = (c.prompts ?? []).map(String);
  const seeds: number[] | null = Array.isArray(c.seeds) ? c.seeds.map(Number) : null;
  const perPrompt = seeds?.length ?? Number(c.numImages ?? 4);
  const first = Number(c.seed ?? 0);
  return (job.progress?.files ?? []).filter(isImage).map((name, i) => {
    // "<prompt index>-<slug>-seed<n>.png" says both; else count as generateP3S writes them
    const named = /^(\d+)-.*-seed(\d+)\.png$/.exec(name.split('/').pop() ?? name);
    const k = perPrompt > 0 ? i % perPrompt : 0;
    const p = named ? Number(named[1]) : perPrompt > 0 ? Math.floor(i / perPrompt) : 0;
    return {
      name,
      prompt: prompts[p] ?? '',
      seed: named ? Number(named[2]) : seeds ? (seeds[k] ?? null) : first + k,
    };
  });
}

/** The prompt as a person wrote it, with the subject's words where "{}" stands. */
function shownPrompt(prompt: string, subject: Subject | null): string {
  if (!subject) return prompt;
  return prompt.replaceAll('{}', `${subject.identifier} ${subject.classWord}`);
}

/** Every generate job's images, oldest job first. */
export function renderGallery(
  container: HTMLElement,
  jobs: JobRecord[],
  subject: Subject | null,
): void {
  const groups: HTMLElement[] = [];
  for (const job of [...jobs].reverse()) {
    const images = generatedImages(job);
    if (!images.length) continue;
    const figures = images.map((im, i) =>
      h(
        'figure',
        { class: 'result' },
        h(
          'a',
          { href: jobFileUrl(job.id, im.name), target: '_blank' },
          keptImg(jobFileUrl(job.id, im.name), { alt: shownPrompt(im.prompt, subject) }),
        ),
        h(
          'figcaption',
          {},
          h('span', { class: 'prompt', text: shownPrompt(im.prompt, subject) }),
          h(
            'span',
            { class: 'meta' },
            im.seed === null ? `#${i + 1}` : `seed ${im.seed}`,
            ' · ',
            h('a', {
              href: jobFileUrl(job.id, im.name),
              download: im.name.split('/').pop() ?? im.name,
              text: 'download',
            }),
          ),
        ),
      ),
    );
    groups.push(
      h(
        'div',
        { class: 'result-group', 'data-job': job.id },
        h(
          'header',
          {},
          h('time', { datetime: job.createdAt, text: timeOf(job.createdAt) }),
          job.state === 'succeeded'
            ? h('a', {
                href: withToken(`/api/jobs/${seg(job.id)}/archive.zip`),
                download: `p3s-${job.id}.zip`,
                class: 'download',
                text: '⬇ all images (archive.zip)',
              })
            : h('span', { class: 'hint', text: `${job.state}…` }),
        ),
        h('div', { class: 'results' }, ...figures),
      ),
    );
  }
  container.replaceChildren(
    ...(groups.length
      ? groups
      : [h('p', { class: 'hint', text: 'Generated images appear here, in the order made.' })]),
  );
}
