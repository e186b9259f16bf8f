// The page of `p3s serve`: 1 photos and clicks → 2 train → 3 generate, on the HTTP API of
// ../api.ts. Plain DOM and a canvas; bundled by scripts/build-page.mjs.
import {
  LIMITS,
  type GenerateRequest,
  type JobRecord,
  type MaskPreview,
  type ModelsInfo,
  type NewSubject,
  type Photo,
  type Subject,
  type TrainRequest,
} from '../api.js';
import { api, seg } from './client.js';
import { byId, h } from './dom.js';
import { renderGallery } from './gallery.js';
import { generateCard, isFinished, JobStore, listen, trainCard } from './jobs.js';
import { attempt, showError, showNote } from './notice.js';
import { PhotoEditor } from './photos.js';

const ACCEPTED_TYPES = ['image/jpeg', 'image/png', 'image/webp'];

/** The common settings of `p3s train` (keys and help as in src/p3s/train_settings.ts). */
const TRAIN_FIELDS: {
  key: string;
  label: string;
  help: string;
  step: string;
  min: string;
  placeholder: (m: ModelsInfo | null) => string;
}[] = [
  {
    key: 'maxSteps',
    label: 'Max steps',
    help: 'optimizer steps in all (overrides epochs)',
    step: '1',
    min: '1',
    placeholder: () => 'from epochs',
  },
  {
    key: 'epochs',
    label: 'Epochs',
    help: 'passes over the references, as in Sec. IV-A',
    step: '1',
    min: '1',
    placeholder: () => '60',
  },
  {
    key: 'learningRate',
    label: 'Learning rate',
    help: "Adam's learning rate, as in Sec. IV-A",
    step: 'any',
    min: '0',
    placeholder: () => '1e-5',
  },
  {
    key: 'resolution',
    label: 'Resolution (px)',
    help: 'square training size',
    step: '8',
    min: '8',
    placeholder: (m) => (m ? String(m.resolution) : "the model's"),
  },
  {
    key: 'batchSize',
    label: 'Batch size',
    help: 'samples per micro-batch',
    step: '1',
    min: '1',
    placeholder: () => '1',
  },
  {
    key: 'seed',
    label: 'Seed',
    help: 'initialisation, data order and every draw',
    step: '1',
    min: '0',
    placeholder: () => '0',
  },
  {
    key: 'sampleEvery',
    label: 'Sample every (steps)',
    help: 'write validation images every n steps',
    step: '1',
    min: '0',
    placeholder: () => 'never',
  },
];

interface State {
  models: ModelsInfo | null;
  subjects: Subject[];
  subject: Subject | null;
}

const state: State = { models: null, subjects: [], subject: null };
const store = new JobStore();

const editor = new PhotoEditor({
  pointsChanged: (photo) => pointsChanged(photo),
  deletePhoto: (photo) => void deletePhoto(photo),
  addFiles: (files) => void addFiles(files),
});

// ---- subjects -------------------------------------------------------------------------------

function subjectFromHash(): string | null {
  const m = /(?:^#|&)subject=([^&]+)/.exec(location.hash);
  return m ? decodeURIComponent(m[1]!) : null;
}

function renderSubjects(): void {
  const select = byId<HTMLSelectElement>('subject-select');
  select.replaceChildren(
    h('option', { value: '', text: state.subjects.length ? '— pick one —' : '— none yet —' }),
    ...state.subjects.map((s) =>
      h('option', {
        value: s.id,
        text: `${s.name} (${s.identifier} ${s.classWord}, ${s.photos.length} photos)`,
        selected: s.id === state.subject?.id,
      }),
    ),
  );
  select.value = state.subject?.id ?? '';
}

/** Replaces the subject everywhere it shows. */
function setSubject(subject: Subject | null): void {
  const changed = subject?.id !== state.subject?.id;
  state.subject = subject;
  if (subject) {
    const i = state.subjects.findIndex((s) => s.id === subject.id);
    if (i >= 0) state.subjects[i] = subject;
    else state.subjects.push(subject);
  }
  renderSubjects();
  byId('no-subject').hidden = !!subject;
  for (const id of ['photos-section', 'train-section', 'generate-section'])
    byId(id).hidden = !subject;
  editor.setSubject(subject);
  byId<HTMLButtonElement>('train-button').disabled = !subject?.photos.length;
  if (changed) {
    history.replaceState(null, '', subject ? `#subject=${seg(subject.id)}` : '#');
    void attempt('list the jobs', () => store.load(subject?.id ?? null));
    if (subject && editor.hasClicks()) void refreshMasks();
  }
}

async function selectSubject(id: string): Promise<void> {
  if (!id) {
    setSubject(null);
    return;
  }
  const subject = await attempt('open the subject', () =>
    api.get<Subject>(`/api/subjects/${seg(id)}`),
  );
  if (subject) setSubject(subject);
}

async function createSubject(): Promise<void> {
  const nameInput = byId<HTMLInputElement>('subject-name');
  const classInput = byId<HTMLInputElement>('subject-class');
  const body: NewSubject = {
    name: nameInput.value.trim(),
    classWord: classInput.value.trim().toLowerCase(),
  };
  if (!body.name || !body.classWord) {
    showError('A new subject needs a name and a class word (one lowercase word, such as “dog”).');
    return;
  }
  const subject = await attempt('create the subject', () =>
    api.post<Subject>('/api/subjects', body),
  );
  if (!subject) return;
  nameInput.value = '';
  classInput.value = '';
  setSubject(subject);
  showNote(
    `Created ${subject.name}: prompts name it “${subject.identifier} ${subject.classWord}”.`,
  );
}

// ---- photos and clicks --------------------------------------------------------------------

async function addFiles(files: File[]): Promise<void> {
  const subject = state.subject;
  if (!subject) return;
  const wrong = files.filter((f) => !ACCEPTED_TYPES.includes(f.type));
  if (wrong.length) {
    showError(`Not a JPEG, PNG or WebP photo: ${wrong.map((f) => f.name).join(', ')}`);
    return;
  }
  const big = files.filter((f) => f.size > LIMITS.maxUploadBytes);
  if (big.length) {
    const mb = LIMITS.maxUploadBytes / 1024 / 1024;
    showError(`Larger than ${mb} MB: ${big.map((f) => f.name).join(', ')}`);
    return;
  }
  const room = LIMITS.maxPhotos - subject.photos.length;
  if (files.length > room) {
    showError(
      `A subject has at most ${LIMITS.maxPhotos} photos: ${subject.name} has ${subject.photos.length}, so ${Math.max(0, room)} more fit.`,
    );
    return;
  }
  const form = new FormData();
  for (const f of files) form.append('photos', f, f.name);
  const drop = byId('drop');
  drop.classList.add('busy');
  try {
    const updated = await attempt('add the photos', () =>
      api.post<Subject>(`/api/subjects/${seg(subject.id)}/photos`, form),
    );
    if (!updated || state.subject?.id !== subject.id) return;
    setSubject(updated);
    const n = updated.photos.length;
    if (n < 3) showNote(`${n} photo${n === 1 ? '' : 's'}: 3–8 work best.`);
    if (editor.hasClicks()) void refreshMasks();
  } finally {
    drop.classList.remove('busy');
  }
}

async function deletePhoto(photo: Photo): Promise<void> {
  const subject = state.subject;
  if (!subject) return;
  const updated = await attempt(`delete ${photo.name}`, () =>
    api.delete<Subject>(`/api/subjects/${seg(subject.id)}/photos/${seg(photo.id)}`),
  );
  if (!updated || state.subject?.id !== subject.id) return;
  setSubject(updated);
  void refreshMasks();
}

const dirty = new Set<string>();
let saving: Promise<void> | null = null;

/** Saves changed points one request at a time, then remakes the masks once for the latest. */
function pointsChanged(photo: Photo): void {
  editor.masksBusy(); // the masks shown are stale from this click on
  dirty.add(photo.id);
  if (!saving) saving = savePoints().finally(() => (saving = null));
}

async function savePoints(): Promise<void> {
  while (dirty.size) {
    const subject = state.subject;
    if (!subject) return;
    const ids = [...dirty];
    dirty.clear();
    let latest: Subject | null = null;
    try {
      for (const id of ids) {
        const photo = subject.photos.find((p) => p.id === id);
        if (!photo) continue;
        latest = await api.put<Subject>(
          `/api/subjects/${seg(subject.id)}/photos/${seg(id)}/points`,
          { positive: photo.positive, negative: photo.negative },
        );
      }
    } catch (err) {
      showError(err, 'save the clicks');
      dirty.clear();
      await selectSubject(subject.id); // show what the server has
      await refreshMasks();
      return;
    }
    if (state.subject?.id !== subject.id) return;
    if (dirty.size) continue; // more clicks came: save them before making masks
    if (latest) setSubject(latest);
    await refreshMasks();
  }
}

let maskSeq = 0;

async function refreshMasks(): Promise<void> {
  const subject = state.subject;
  if (!subject) return;
  const seq = ++maskSeq;
  if (!editor.hasClicks()) {
    editor.setMasks(null);
    return;
  }
  editor.masksBusy();
  const preview = await attempt('make the masks', () =>
    api.post<MaskPreview>(`/api/subjects/${seg(subject.id)}/masks`),
  );
  if (seq !== maskSeq || state.subject?.id !== subject.id) return;
  editor.setMasks(preview ?? null);
}

// ---- training -------------------------------------------------------------------------------

function renderTrainFields(): void {
  byId('train-fields').replaceChildren(
    ...TRAIN_FIELDS.map((f) =>
      h(
        'label',
        { title: f.help },
        h('span', { class: 'label', text: f.label }),
        h('input', {
          type: 'number',
          name: f.key,
          'data-setting': f.key,
          step: f.step,
          min: f.min,
          placeholder: f.placeholder(state.models),
        }),
        h('small', { text: f.help }),
      ),
    ),
  );
}

function trainSettings(): Record<string, unknown> | null {
  const settings: Record<string, unknown> = {};
  for (const input of document.querySelectorAll<HTMLInputElement>('#train-fields input')) {
    const raw = input.value.trim();
    if (!raw) continue;
    const value = Number(raw);
    if (!Number.isFinite(value) || !input.checkValidity()) {
      showError(
        `${input.dataset.setting}: “${raw}” is not a valid value (${input.title || input.validationMessage})`,
      );
      input.focus();
      return null;
    }
    settings[input.dataset.setting!] = value;
  }
  return settings;
}

async function train(): Promise<void> {
  const subject = state.subject;
  if (!subject) return;
  if (!editor.hasClicks()) {
    showError(
      'Click the subject on at least one photo first (left click), so training knows which one it is.',
    );
    return;
  }
  const settings = trainSettings();
  if (!settings) return;
  const button = byId<HTMLButtonElement>('train-button');
  button.disabled = true;
  try {
    const body: TrainRequest = Object.keys(settings).length ? { settings } : {};
    const job = await attempt('start training', () =>
      api.post<JobRecord>(`/api/subjects/${seg(subject.id)}/train`, body),
    );
    if (job) store.event({ type: 'submitted', job });
  } finally {
    button.disabled = !state.subject?.photos.length;
  }
}

// ---- generating ---------------------------------------------------------------------------

function promptLines(): string[] {
  return byId<HTMLTextAreaElement>('prompts')
    .value.split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

function contextPrompt(context: string): string {
  return context.startsWith('{}') ? `a ${context}` : context;
}

function renderContexts(): void {
  const lines = new Set(promptLines());
  const contexts = state.models?.exampleContexts ?? [];
  byId('contexts').replaceChildren(
    ...(contexts.length ? [h('span', { class: 'hint', text: 'examples:' })] : []),
    ...contexts.map((c) => {
      const prompt = contextPrompt(c);
      const chip = h('button', {
        type: 'button',
        class: 'chip',
        text: c.replaceAll('{}', '…'),
        title: prompt,
        'aria-pressed': lines.has(prompt) ? 'true' : 'false',
      });
      chip.addEventListener('click', () => {
        const area = byId<HTMLTextAreaElement>('prompts');
        const current = promptLines();
        area.value = (
          current.includes(prompt) ? current.filter((l) => l !== prompt) : [...current, prompt]
        ).join('\n');
        renderContexts();
      });
      return chip;
    }),
  );
}

function numberOf(id: string): number | undefined {
  const raw = byId<HTMLInputElement>(id).value.trim();
  return raw === '' ? undefined : Number(raw);
}

async function generate(): Promise<void> {
  const subject = state.subject;
  if (!subject) return;
  const trainJob = byId<HTMLSelectElement>('adapter-select').value;
  if (!trainJob) {
    showError(
      'Generating needs an adapter: train one first (section 2) and wait until it is done.',
    );
    return;
  }
  const prompts = promptLines();
  if (!prompts.length) {
    showError('Write a prompt, such as “a {} on the beach”.');
    return;
  }
  if (prompts.length > LIMITS.maxPrompts) {
    showError(`At most ${LIMITS.maxPrompts} prompts at once (there are ${prompts.length}).`);
    return;
  }
  if (prompts.some((p) => !p.includes('{}') && !p.includes(subject.identifier)))
    showNote('A prompt without {} does not name the subject.');
  const body: GenerateRequest = { trainJob, prompts };
  const numImages = numberOf('num-images');
  const seed = numberOf('gen-seed');
  const guidanceScale = numberOf('guidance');
  const steps = numberOf('gen-steps');
  if (numImages !== undefined) body.numImages = numImages;
  if (seed !== undefined) body.seed = seed;
  if (guidanceScale !== undefined) body.guidanceScale = guidanceScale;
  if (steps !== undefined) body.steps = steps;
  const button = byId<HTMLButtonElement>('generate-button');
  button.disabled = true;
  try {
    const job = await attempt('start generating', () =>
      api.post<JobRecord>(`/api/subjects/${seg(subject.id)}/generate`, body),
    );
    if (job) store.event({ type: 'submitted', job });
  } finally {
    button.disabled = false;
  }
}

function renderAdapters(): void {
  const select = byId<HTMLSelectElement>('adapter-select');
  const before = select.value;
  const done = store.list('train').filter((j) => j.state === 'succeeded');
  select.replaceChildren(
    ...(done.length
      ? done.map((j, i) =>
          h('option', {
            value: j.id,
            text: `${i === 0 ? 'newest: ' : ''}training of ${new Date(j.finishedAt ?? j.createdAt).toLocaleString()}${j.progress ? ` (${j.progress.done} steps)` : ''}`,
          }),
        )
      : [h('option', { value: '', text: 'no finished training yet' })]),
  );
  if (done.some((j) => j.id === before)) select.value = before;
  byId<HTMLButtonElement>('generate-button').disabled = done.length === 0;
}

// ---- jobs -----------------------------------------------------------------------------------

function renderJobs(): void {
  const trains = store.list('train');
  byId('train-jobs').replaceChildren(...trains.map((j) => trainCard(j, store)));
  const generates = store.list('generate');
  byId('generate-jobs').replaceChildren(
    ...generates.filter((j) => j.state !== 'succeeded').map((j) => generateCard(j, store)),
  );
  renderGallery(byId('gallery'), generates, state.subject);
  renderAdapters();
}

store.onChange((job) => {
  renderJobs();
  if (job && isFinished(job.state)) {
    if (job.state === 'succeeded')
      showNote(job.input.kind === 'train' ? 'Training finished.' : 'Images ready.');
    else if (job.state === 'failed')
      showError(`The ${job.input.kind} job failed: ${job.error?.message ?? 'no reason given'}`);
  }
});

// ---- start ----------------------------------------------------------------------------------

window.addEventListener('unhandledrejection', (e) => showError(e.reason));
window.addEventListener('error', (e) => showError(e.error ?? e.message));

byId('subject-form').addEventListener('submit', (e) => {
  e.preventDefault();
  void createSubject();
});
byId<HTMLSelectElement>('subject-select').addEventListener('change', (e) => {
  void selectSubject((e.target as HTMLSelectElement).value);
});
byId('train-form').addEventListener('submit', (e) => {
  e.preventDefault();
  void train();
});
byId('generate-form').addEventListener('submit', (e) => {
  e.preventDefault();
  void generate();
});
byId('prompts').addEventListener('input', () => renderContexts());
window.addEventListener('hashchange', () => {
  const id = subjectFromHash();
  if (id && id !== state.subject?.id) void selectSubject(id);
});

async function start(): Promise<void> {
  renderTrainFields();
  let opened = false;
  listen(
    (ev) => store.event(ev),
    () => {
      // after a reconnect, catch up on what happened while away
      if (opened && state.subject)
        void attempt('list the jobs', () => store.load(state.subject!.id));
      opened = true;
    },
  );
  const [models, subjects] = await Promise.all([
    attempt('read the models', () => api.get<ModelsInfo>('/api/models')),
    attempt('list the subjects', () => api.get<Subject[]>('/api/subjects')),
  ]);
  state.models = models ?? null;
  if (models) {
    const line = `${models.base} · ${models.clip} · ${models.resolution} px`;
    byId('models').textContent = line;
    byId('models').title =
      `base model · CLIP model · training resolution${models.toy ? ' (the shipped toy models)' : ''}`;
  }
  renderTrainFields();
  renderContexts();
  state.subjects = subjects ?? [];
  renderSubjects();
  const wanted = subjectFromHash() ?? (state.subjects.length === 1 ? state.subjects[0]!.id : null);
  if (wanted) await selectSubject(wanted);
  else setSubject(null);
}

void start();
