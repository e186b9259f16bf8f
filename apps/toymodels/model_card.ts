// models/toy/README.md: what the toy models are, how they were trained, how good they are —
// written from training.json and quality.json, so the card always matches the weights.
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  isDefaultMask,
  type SelectiveNumbers,
  type SelectiveQuality,
  type SubjectNumbers,
  type ToyQuality,
} from './evaluate.js';
import type { AdapterRecipe } from './recipes.js';
import {
  BACKGROUNDS,
  CHANCE,
  COLOUR_NAMES,
  PATTERNS,
  SHAPES,
} from '../../src/toyworld/attributes.js';
import type { StageReport, ToyStage } from './train_toy.js';
import { TOY_TEXT_CONFIG, TOY_UNET_CONFIG, TOY_VAE_CONFIG, TOY_VISION_CONFIG } from './configs.js';
import { DEFAULT_SCENE_MIX } from './data.js';

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

function folderBytes(folder: string): number {
  let total = 0;
  for (const name of readdirSync(folder)) {
    const path = join(folder, name);
    const s = statSync(path);
    total += s.isDirectory() ? folderBytes(path) : s.size;
  }
  return total;
}

/** The probe on VAE round trips, when measured: roughly the ceiling the decoder puts on generated images. */
function roundTripLine(q: ToyQuality): string {
  const r = q.vaeRoundTrip;
  if (!r) return '';
  return `
- **VAE round trips** (the probe on encode → decode of the same ${String(r.count)} scenes: roughly
  the most a generated image can show): colour ${pct(r.colour)}, shape ${pct(r.shape)}, pattern ${pct(r.pattern)},
  background ${pct(r.background)}; colour and pattern together ${pct(r.colourAndPattern)}.`;
}

function bestDefaultIoU(q: ToyQuality): number {
  return Math.max(0, ...q.rngr.filter(isDefaultMask).map((r) => r.subjectIoU));
}

function selectiveRows(s: SelectiveQuality): string {
  const row = (label: string, n: SelectiveNumbers) =>
    `| ${label} | ${pct(n.fidelity)} | ${pct(n.lookalikeRate)} | ${pct(n.contextAccuracy)} | ${pct(n.colourFidelity)} | ${pct(n.lookalikeColourRate)} | ${n.maskIoU.toFixed(3)} |`;
  return `| clicks | subject's colour + pattern + shape | a look-alike's colour + pattern | prompted context | subject's colour | a look-alike's other colour | subject-mask IoU |
| --- | --- | --- | --- | --- | --- | --- |
${row('positive + negative', s.withNegative)}
${row('positive only', s.positiveOnly)}
${perSubjectRows(s)}`;
}

/** Each subject's shares, with and without the negative click: how evenly the mean is spread. */
function perSubjectRows(s: SelectiveQuality): string {
  const neg = s.withNegative.perSubject;
  const pos = s.positiveOnly.perSubject;
  if (!neg?.length) return '';
  const cells = (n: SubjectNumbers | undefined) =>
    n ? `${pct(n.fidelity)} | ${pct(n.lookalikeRate)} | ${pct(n.contextAccuracy)}` : ' | | ';
  const rows = neg.map((n, i) => `| ${n.seed} | ${n.subject} | ${cells(n)} | ${cells(pos?.[i])} |`);
  return `
Per subject (subject's look / a look-alike's look / prompted context):

| seed | subject | with negative: subject | look-alike | context | positive only: subject | look-alike | context |
| --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}
`;
}

function subjectSeedList(s: SelectiveQuality): string {
  const seeds = s.subjectSeeds ?? [];
  return seeds.length > 0 ? seeds.join(', ') : `0–${String(s.subjects - 1)}`;
}

/** What the card says a recipe injects with; quality.json written before the field was named injectionMode calls it injection. */
function recipeInjection(recipe: AdapterRecipe): string {
  const older = recipe as Partial<AdapterRecipe> & { injection?: string };
  return older.injectionMode ?? older.injection ?? '';
}

/**
 * The recipe in words, as the card's sentence lists it. Fields older quality.json files lack
 * read as the setting's default.
 */
function recipeWords(a: AdapterRecipe, steps: number): string {
  const rate = `${steps} steps at lr ${a.learningRate}${a.lrSchedule === 'cosine' ? ' decayed along a cosine' : ''}`;
  const parts = [
    `${rate}${(a.batchSize ?? 1) !== 1 ? ` in batches of ${a.batchSize}` : ''}`,
    (a.timestepShift ?? 1) !== 1 ? `timesteps shifted towards noise by ${a.timestepShift}` : '',
    `ε_t ${a.weightCurve}`,
    a.subjectGuidance
      ? `subject guidance${a.subjectGuidanceScale != null ? ` at its own scale ${a.subjectGuidanceScale}` : ''}`
      : '',
    a.subjectOnlyCondition ? 'subject-only condition' : '',
    (a.backgroundLossWeight ?? 1) !== 1 ? `background loss weight ${a.backgroundLossWeight}` : '',
    a.flip === true ? 'samples mirrored at random' : '',
    a.localInjection != null ? `local injection ${a.localInjection}` : '',
    a.guidanceScale !== undefined ? `guidance ${a.guidanceScale}` : '',
    a.reference === 'best' ? 'each subject drawn from its best reference by CLIP-I' : '',
  ];
  return parts.filter((p) => p !== '').join(', ');
}

function selectiveSection(q: ToyQuality): string {
  const s = q.selective;
  if (!s) return '';
  const r = q.selectiveRecipe;
  const a = r?.recipe;
  const recipe =
    r && a
      ? `
  With \`p3s demo\`'s recipe (${a.identifier ? `the subject named "${a.identifier}", ` : ''}${recipeInjection(a)} injection, references ${a.subjectCrop === null ? 'whole' : `cut to ${a.subjectCrop}× the subject's box`},
  ${recipeWords(a, r.steps)}; docs/toy.md), same subjects:

${selectiveRows(r)}`
      : '';
  return `
- **Selective fidelity** (\`p3s demo --paper-settings\`'s experiment on ${s.subjects} evaluation subjects,
  reference-set seeds ${subjectSeedList(s)}, fixed before any tuning and disjoint from the subjects
  recipes were tuned on: 4 references, each with a look-alike of the same shape touching or beside
  the subject that differs in colour or pattern; P3S fine-tuned ${s.steps} steps; ${s.imagesPerSubject} images per
  subject, a few in each of the world's backgrounds; the probe judges every image):

${selectiveRows(s)}${recipe}`;
}

export function writeModelCard(
  folder: string,
  training: Partial<Record<ToyStage, StageReport>>,
  quality: ToyQuality | null,
): void {
  const text = [
    introSection(folder),
    trainingSection(training),
    qualitySection(quality),
    targetsSection(quality, folder),
    limitsSection(quality),
  ].join('');
  writeFileSync(join(folder, 'README.md'), text);
}

/** What the models are: the world they know, their size, their classes. */
function introSection(folder: string): string {
  return `# The p3s toy models

Tiny models trained from scratch by p3s on its own procedural toy world (\`src/toyworld/\`): 64-px
scenes of one or two objects (${SHAPES.length} shapes, ${COLOUR_NAMES.length} colours, ${PATTERNS.length} patterns) on ${BACKGROUNDS.length} named backgrounds, with
captions such as "a red striped star on the beach". They are the embedded default: \`p3s demo\` and
the end-to-end tests run on them. Same code, configs, folder layout and state-dict keys as Stable
Diffusion 1.5 (diffusers) and CLIP (transformers); CLIP's real BPE tokenizer (OpenAI, MIT licence:
\`tokenizer/LICENSE\`). Weights are float16 (${(folderBytes(folder) / 2 ** 20).toFixed(1)} MiB in all).

Reproduce: \`npm run train:toy\` (deterministic for a seed and thread count on one machine; resumable; docs/toy.md).

## Models

| folder | class | size |
| --- | --- | --- |
| vae/ | AutoencoderKL, channels ${JSON.stringify(TOY_VAE_CONFIG.block_out_channels)}, 64 px -> 16×16×4 | |
| text_encoder/ | CLIPTextModelWithProjection, width ${String(TOY_TEXT_CONFIG.hidden_size)}, ${String(TOY_TEXT_CONFIG.num_hidden_layers)} layers | |
| image_encoder/ | CLIPVisionModelWithProjection, 64 px, patch ${String(TOY_VISION_CONFIG.patch_size)}, width ${String(TOY_VISION_CONFIG.hidden_size)}, ${String(TOY_VISION_CONFIG.num_hidden_layers)} layers | |
| unet/ | UNet2DConditionModel, channels ${JSON.stringify(TOY_UNET_CONFIG.block_out_channels)}, context 77 × ${String(TOY_UNET_CONFIG.cross_attention_dim)} | |
| probe/ | AttributeProbe (evaluation only): 5 conv + GroupNorm blocks, mean and max pooled, heads colour / shape / pattern / background | |

`;
}

/** The stages' times summed, in minutes of one core. */
function cpuMinutes(training: Partial<Record<ToyStage, StageReport>>): string {
  const reports = Object.values(training);
  const minutes = reports.reduce((a, r) => a + (r.totalSeconds / 60) * r.threads, 0);
  return reports.length > 0
    ? `In all ${minutes.toFixed(0)} CPU-minutes (thread-minutes summed over the stages).`
    : '';
}

/** Each stage as training.json recorded it. */
function trainingSection(training: Partial<Record<ToyStage, StageReport>>): string {
  const stage = (name: ToyStage, what: string) => {
    const r = training[name];
    return r
      ? `| ${name} | ${what} | ${r.steps} × ${r.batchSize} | ${r.finalLoss.toFixed(4)} | ${(r.totalSeconds / 60).toFixed(1)} min (${r.threads} thread${r.threads > 1 ? 's' : ''}) |`
      : `| ${name} | ${what} | not trained | | |`;
  };
  const k = training.clip?.hardNegatives ?? 0;
  const clipNegatives = k > 0 ? `, ${k} one-attribute-changed captions per image as negatives` : '';
  const w = training.decoder?.objectWeight ?? 0;
  const decoderWeighting = w > 0 ? ` weighted ${1 + w}× on object pixels` : '';
  const te = training.unet;
  const textEncoder = te?.trainTextEncoder
    ? `text encoder trained along (from the clip stage's) at ${te.textEncoderLrScale ?? 1}× the U-Net's learning rate`
    : 'frozen text encoder';
  const gamma = te?.minSnrGamma ?? 0;
  const weighting = gamma > 0 ? ` weighted by min(SNR, ${gamma})/SNR` : '';
  const two = Math.round(100 * (te?.twoObjectShare ?? DEFAULT_SCENE_MIX.twoObjectShare));
  const scenes =
    te?.layout === 'slots'
      ? `scenes with objects upright at fixed places (one centred, two side by side), ${two} % with two objects`
      : `scenes with objects anywhere, ${two} % with two objects`;
  const unsaidShare = (what: string, share = 0) =>
    share > 0 ? [`the ${what} of ${Math.round(100 * share)} %`] : [];
  const unsaid = [
    ...unsaidShare('colour', te?.colourDropout),
    ...unsaidShare('pattern', te?.patternDropout),
  ];
  const captions =
    unsaid.length > 0 ? `; captions leave ${unsaid.join(' and ')} of objects unsaid` : '';
  const adapter = training.adapter
    ? `\n${stage('adapter', 'P3S adapter on subject pairs (condition: one photo, subject only; target: another), Eq. (14) weighted towards the subject; p3s_adapter/, an experiment (docs/toy.md)')}`
    : '';
  return `## Training (CPU)

Data: the toy world's training split, generated on the fly; every stage sees its own scenes.
The evaluation uses the held-out split (other seeds), never seen in training.

| stage | objective | steps × batch | final loss (mean of last 50) | time |
| --- | --- | --- | --- | --- |
${stage('vae', 'L1 reconstruction + 1e-4 · KL')}
${stage('decoder', `the VAE decoder alone, L1 reconstruction${decoderWeighting}; encoder and latent space frozen`)}
${stage('clip', `symmetric InfoNCE, learned temperature${clipNegatives}`)}
${stage('probe', 'cross-entropy per head, single-object scenes')}
${stage('unet', `ε-prediction MSE${weighting}, SD 1.5 schedule, 10 % captions dropped, frozen VAE, ${textEncoder}; ${scenes}${captions}`)}${adapter}

AdamW, linear warm-up then cosine decay to 10 %, gradient clipping at 1. ${cpuMinutes(training)}

`;
}

const layerName = (layer: number) =>
  layer === -1 ? 'last hidden state' : layer === 0 ? 'embeddings' : `after layer ${layer}`;

/** quality.json's numbers, or a note that the models are not evaluated yet. */
function qualitySection(q: ToyQuality | null): string {
  return `## Quality on held-out scenes

${q ? qualityLines(q) : 'Not evaluated yet (run `npm run train:toy -- --stages eval`).'}
`;
}

function qualityLines(q: ToyQuality): string {
  const rngrRows = q.rngr
    .map(
      (r) =>
        `| ${layerName(r.layer)} | ${r.dense === 1 ? '8×8' : `${8 * r.dense}×${8 * r.dense} (dense ${r.dense})`} | ${isDefaultMask(r) ? 'p3s default (compare, guided)' : `${r.rule}, ${r.refine === 'none' ? 'patch level' : 'guided'}`} | ${r.subjectIoU.toFixed(3)} | ${pct(r.distractorLeak)} | ${r.distractorIoU === undefined ? '' : r.distractorIoU.toFixed(3)} |`,
    )
    .join('\n');
  return `- **CLIP image→caption retrieval** (${q.clipRetrieval.count} scenes, 1 true caption among ${q.clipRetrieval.candidates}):
  ${pct(q.clipRetrieval.accuracy)} against captions of other scenes; ${pct(q.clipRetrieval.hardAccuracy)} against
  captions that change one attribute (colour, shape, pattern or background). Chance: ${pct(1 / q.clipRetrieval.candidates)}.
- **Probe** (the judge; ${q.probe.count} single-object scenes): colour ${pct(q.probe.colour)}, shape ${pct(q.probe.shape)},
  pattern ${pct(q.probe.pattern)}, background ${pct(q.probe.background)}.${roundTripLine(q)}
- **Text-to-image attribute accuracy** (${q.generation.count} held-out captions, DDIM ${q.generation.steps} steps,
  guidance ${q.generation.guidanceScale}; judged by the probe): colour ${pct(q.generation.colour)}, shape ${pct(q.generation.shape)},
  pattern ${pct(q.generation.pattern)}, background ${pct(q.generation.background)}, all four ${pct(q.generation.all)}.
  Chance: colour ${pct(CHANCE.colour)}, shape ${pct(CHANCE.shape)}, pattern ${pct(CHANCE.pattern)}, background ${pct(CHANCE.background)}.
- **RNGR masks** (Eq. 1–3) on look-alike pairs, positive click on the subject and negative on the
  look-alike, ${q.rngr[0]?.count ?? 0} held-out pairs, by the CLIP hidden state compared, the patch grid and the mask rule:
  p3s's default (the compare rule and guided refinement, docs/annotations.md) or Eq. (2) as the
  paper writes it (product, thresholded on the patch grid). p3s demo uses the best default entry:
  ${layerName(q.maskLayer)}, dense ${q.maskDense}.

| patch tokens | grid | mask | subject-mask IoU | look-alike pixels inside the subject mask | look-alike-mask IoU |
| --- | --- | --- | --- | --- | --- |
${rngrRows}
${selectiveSection(q)}`;
}

/** One target the toy models are held to, and what was measured against it. */
interface Target {
  what: string;
  goal: string;
  measured: number | undefined;
  met: (v: number) => boolean;
  format: (v: number) => string;
}

/** The toy models' targets (docs/toy.md, "Targets"), each with its measurement. */
function targets(q: ToyQuality, folder: string): Target[] {
  const g = q.generation;
  const r = q.selectiveRecipe?.withNegative;
  const atLeast = (x: number) => (v: number) => v >= x;
  const share = (what: string, goal: number, measured: number | undefined): Target => ({
    what,
    goal: `≥ ${pct(goal)}`,
    measured,
    met: atLeast(goal),
    format: pct,
  });
  return [
    ...(['colour', 'shape', 'pattern', 'background'] as const).map((k) =>
      share(`text-to-image: prompted ${k}`, 0.9, g[k]),
    ),
    share('text-to-image: all four at once', 0.7, g.all),
    share("selective, demo recipe, negative click: subject's look", 0.8, r?.fidelity),
    {
      what: "selective, demo recipe, negative click: a look-alike's look",
      goal: '≤ 10 %',
      measured: r?.lookalikeRate,
      met: (v) => v <= 0.1,
      format: pct,
    },
    share('selective, demo recipe, negative click: prompted context', 0.7, r?.contextAccuracy),
    {
      what: 'RNGR subject-mask IoU on look-alike pairs',
      goal: '≥ 0.75',
      measured: bestDefaultIoU(q),
      met: atLeast(0.75),
      format: (v) => v.toFixed(3),
    },
    {
      what: 'all weights, fp16',
      goal: '≤ 25 MiB',
      measured: folderBytes(folder) / 2 ** 20,
      met: (v) => v <= 25,
      format: (v) => `${v.toFixed(1)} MiB`,
    },
  ];
}

function targetsSection(q: ToyQuality | null, folder: string): string {
  if (!q) return '';
  const rows = targets(q, folder).map((t) => {
    const v = t.measured;
    const verdict = v === undefined ? 'not measured' : t.met(v) ? 'met' : 'not met';
    return `| ${t.what} | ${t.goal} | ${v === undefined ? '' : t.format(v)} | ${verdict} |`;
  });
  return `## Targets

| target | goal | measured | |
| --- | --- | --- | --- |
${rows.join('\n')}

`;
}

/** What the numbers mean and do not. */
function limitsSection(q: ToyQuality | null): string {
  return `## Limits

Every number above is the probe's reading. It reads rendered held-out scenes almost without
error${q ? ` (colour ${pct(q.probe.colour)}, shape ${pct(q.probe.shape)}, pattern ${pct(q.probe.pattern)}, background ${pct(q.probe.background)})` : ''}, and on generated
images its mistakes count against the models: the images in \`p3s demo\`'s report let anyone check
it by eye. The text-to-image numbers are for captions of one object. The selective numbers
depend on the adapter's recipe: \`p3s demo\`'s was chosen on the tuning subjects and is reported
here on the evaluation subjects, which no setting was chosen on; the paper's adapter (decoupled
injection, lr 1e-4) moves these small models little in ${q?.selective?.steps ?? 200} steps. Training is deterministic for
a seed and thread count on one machine; on another CPU \`npm run train:toy\` gives models of
the same quality, not the same bytes (docs/toy.md).
`;
}
