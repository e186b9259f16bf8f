// models/toy/README.md: what the toy models are, how they were trained, how good they are —
// written from training.json and quality.json, so the card always matches the weights.
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  isDefaultMask,
  type SelectiveNumbers,
  type SelectiveQuality,
  type ToyQuality,
} from './evaluate.js';
import type { AdapterRecipe } from './recipes.js';
import type { StageReport, ToyStage } from './train_toy.js';
import { TOY_TEXT_CONFIG, TOY_UNET_CONFIG, TOY_VAE_CONFIG, TOY_VISION_CONFIG } from './configs.js';

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
    `| ${label} | ${pct(n.fidelity)} | ${pct(n.lookalikeRate)} | ${pct(n.colourFidelity)} | ${pct(n.lookalikeColourRate)} | ${n.maskIoU.toFixed(3)} |`;
  return `| clicks | subject's colour + pattern | a look-alike's colour + pattern | subject's colour | a look-alike's other colour | subject-mask IoU |
| --- | --- | --- | --- | --- | --- |
${row('positive + negative', s.withNegative)}
${row('positive only', s.positiveOnly)}
${perSubjectLine(s)}`;
}

/** The subject's colour + pattern for each subject, when recorded: how evenly the mean is spread. */
function perSubjectLine(s: SelectiveQuality): string {
  const list = (n: SelectiveNumbers) =>
    (n.fidelityPerSubject ?? []).map((f) => (100 * f).toFixed(0)).join(', ');
  if (!s.withNegative.fidelityPerSubject?.length) return '';
  return `
  Per subject (0–${String(s.subjects - 1)}), subject's colour + pattern: ${list(s.withNegative)} % with the
  negative click, ${list(s.positiveOnly)} % without.
`;
}

/** What the card says a recipe injects with; quality.json written before the field was named injectionMode calls it injection. */
function recipeInjection(recipe: AdapterRecipe): string {
  const older = recipe as Partial<AdapterRecipe> & { injection?: string };
  return older.injectionMode ?? older.injection ?? '';
}

function selectiveSection(q: ToyQuality): string {
  const s = q.selective;
  if (!s) return '';
  const r = q.selectiveRecipe;
  const a = r?.recipe;
  const recipe =
    r && a
      ? `
  With \`p3s demo\`'s recipe (${recipeInjection(a)} injection, references ${a.subjectCrop === null ? 'whole' : `cut to ${a.subjectCrop}× the subject's box`},
  ${r.steps} steps at lr ${a.learningRate}, ε_t ${a.weightCurve}${a.subjectGuidance ? ', subject guidance' : ''}${a.subjectOnlyCondition ? ', subject-only condition' : ''}${(a.backgroundLossWeight ?? 1) !== 1 ? `, background loss weight ${a.backgroundLossWeight}` : ''}; docs/toy.md), same subjects:

${selectiveRows(r)}`
      : '';
  return `
- **Selective fidelity** (\`p3s demo --paper-settings\`'s experiment on ${s.subjects} subjects: 4 references, each with a
  look-alike; P3S fine-tuned ${s.steps} steps; ${s.imagesPerSubject} images per subject in 4 new contexts;
  the probe judges colour + pattern):

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
    limitsSection(quality),
  ].join('');
  writeFileSync(join(folder, 'README.md'), text);
}

/** What the models are: the world they know, their size, their classes. */
function introSection(folder: string): string {
  return `# The p3s toy models

Tiny models trained from scratch by p3s on its own procedural toy world (\`src/toyworld/\`): 64-px
scenes of one to three objects (8 shapes, 8 colours, 4 patterns) on 10 named backgrounds, with
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
${stage('unet', 'ε-prediction MSE, SD 1.5 schedule, 10 % captions dropped, frozen VAE + text encoder')}${adapter}

AdamW, linear warm-up then cosine decay to 10 %, gradient clipping at 1.

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
  Chance: colour 12.5 %, shape 12.5 %, pattern 25 %, background 10 %.
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

/** What the models cannot do, with the few numbers that bound it. */
function limitsSection(q: ToyQuality | null): string {
  return `## Limits

These models are small and briefly trained (about two and a half CPU-hours in all). The probe
reads rendered scenes almost without error${q ? ` (shape ${pct(q.probe.shape)}, pattern ${pct(q.probe.pattern)})` : ''}, so the generation numbers
above are the U-Net's own: it gets colour and background right much more often than chance, but
shapes and patterns only at chance, and its objects are soft blobs. With the paper's adapter the
P3S fine-tune barely moves the base model in 200 steps, so the negative click, which gives much
better masks, does not change what comes out. The demo's recipe (an adapter that adds the copy's
features at their own positions, trained longer on subject crops, and guidance that amplifies
it) does draw the subject's pattern and, less often, its colour, and only then does the negative
click show: colour and pattern come out with it and not without. The prompted context suffers,
and selective fidelity is far from the 80 % it is meant to reach. The VAE stage stopped while its loss was still falling; the
decoder stage recovers part of that without touching the latent space, but the decoder still
caps what any generated image can show${q?.vaeRoundTrip ? ` (colour and pattern survive ${pct(q.vaeRoundTrip.colourAndPattern)} of round trips)` : ''};
one weighted towards objects (\`--decoder-object-weight 4\`) lifts that to 93 % on real scenes
but not on generated images, so it is not shipped (docs/toy.md). The ways forward are
longer U-Net training (\`--unet-steps\`; a new step count needs the stage's work folder
deleted first, as its learning-rate schedule depends on it), a longer VAE stage (which means retraining the U-Net on the new latents) and a
GPU. The masks are no longer the weak part: with the compare rule and guided refinement the
subject-mask IoU is ${q ? bestDefaultIoU(q).toFixed(2) : 'n/a'} on look-alike pairs.
`;
}
