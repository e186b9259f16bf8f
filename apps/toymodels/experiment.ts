// One selective-subject experiment on the toy world, end to end with the shipped models: a
// reference set whose photos each show the subject next to a look-alike, clicks from the
// ground truth (positive on the subject; negative on the look-alike, or none for the baseline),
// RNGR masks (Eq. 1–3), P3S fine-tuning, generation in new contexts, and the probe's verdict on
// every generated image. `p3s demo` and the selective-fidelity test are built on it.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writePng, type RgbImage } from '../../src/io/image.js';
import {
  generateP3S,
  type GenerateP3SConfig,
  type GenerateP3SResult,
  type GeneratedImage,
  type GenerateProgress,
} from '../../src/p3s/generate.js';
import { runMaskJob } from '../../src/p3s/supervision/mask_job.js';
import { trainP3S, type TrainP3SConfig, type TrainP3SResult } from '../../src/p3s/train.js';
import type { StepReport } from '../../src/training/observer.js';
import {
  BACKGROUND_PHRASES,
  type BackgroundName,
  type ObjectAttributes,
} from '../../src/toyworld/attributes.js';
import { makeSubjectReferenceSet, type SubjectReferenceSet } from '../../src/toyworld/pairs.js';
import { sceneImage } from './data.js';
import type { AttributeProbe, ProbeLabels } from './probe.js';
import { maskIoU, probeImages } from './quality.js';

export interface ExperimentOptions {
  /** The toy model folder (diffusers layout with image_encoder/ and probe/). */
  modelFolder: string;
  outDir: string;
  /** Picks the subject, its look-alikes and the reference layouts. */
  subjectSeed: number;
  /** How many reference photos (default 4), each with a look-alike. */
  referenceCount?: number;
  /** Click the look-alike as negative (default true); false is the positive-only baseline. */
  negativePoint?: boolean;
  /** P3S fine-tuning steps, learning rate and seed. */
  steps?: number;
  learningRate?: number;
  seed?: number;
  /** Contexts to generate the subject in (default: 4 backgrounds not among the references'). */
  backgrounds?: BackgroundName[];
  imagesPerPrompt?: number;
  sampleSteps?: number;
  guidanceScale?: number;
  /** Which CLIP layer's patch tokens RNGR compares (default -1: the last hidden state). */
  maskLayer?: number;
  /** RNGR on a dense× finer patch grid (default 1; see p3s/dense_features.ts). */
  maskDense?: number;
  probe: AttributeProbe;
  /** Further P3S training settings (λ, condition source, batch size ...). */
  train?: Partial<TrainP3SConfig>;
  /** Further generation settings (weight curve, λ, injection mode ...). */
  generate?: Partial<GenerateP3SConfig>;
  onTrainProgress?: (p: StepReport) => void;
  onGenerateProgress?: (p: GenerateProgress) => void;
}

export interface GeneratedVerdict {
  path: string;
  prompt: string;
  background: BackgroundName;
  seen: ProbeLabels;
  /** Colour and pattern are the subject's. */
  isSubject: boolean;
  /** Colour and pattern are one of the look-alikes'. */
  isLookalike: boolean;
}

export interface ExperimentResult {
  subject: ObjectAttributes;
  lookalikes: ObjectAttributes[];
  negativePoint: boolean;
  referencePaths: string[];
  annotationPath: string;
  /** Per reference: the mask overlay and the subject mask's IoU with the true instance mask. */
  masks: { overlay: string; filled: string; subjectIoU: number }[];
  losses: number[];
  trainSeconds: number;
  adapterPath: string;
  generated: GeneratedVerdict[];
  contactSheet: string | null;
  /** Share of generated images whose colour and pattern are the subject's. */
  fidelity: number;
  /** Share whose colour and pattern are a look-alike's. */
  lookalikeRate: number;
  /** Colour alone (the attribute a blurry 64-px sample keeps best): the subject's, or a look-alike's other colour. */
  colourFidelity: number;
  lookalikeColourRate: number;
  /** Shape and background read as prompted. */
  shapeAccuracy: number;
  backgroundAccuracy: number;
}

const DEFAULTS = {
  referenceCount: 4,
  steps: 200,
  learningRate: 1e-4,
  imagesPerPrompt: 4,
  sampleSteps: 25,
  guidanceScale: 5,
};

/** Backgrounds none of the references use, so generation shows new contexts. */
function newContexts(set: SubjectReferenceSet, n: number): BackgroundName[] {
  const used = new Set(set.images.map((im) => im.scene.background));
  const all = Object.keys(BACKGROUND_PHRASES) as BackgroundName[];
  const fresh = all.filter((b) => !used.has(b));
  return (fresh.length >= n ? fresh : all).slice(0, n);
}

const sameLook = (a: { colour: string; pattern: string }, b: { colour: string; pattern: string }) =>
  a.colour === b.colour && a.pattern === b.pattern;

/** The options with their defaults filled in. */
function withDefaults(options: ExperimentOptions) {
  return { ...DEFAULTS, ...options, outDir: resolve(options.outDir) };
}
type Resolved = ReturnType<typeof withDefaults>;

export async function runSubjectExperiment(options: ExperimentOptions): Promise<ExperimentResult> {
  const o = withDefaults(options);
  const negative = o.negativePoint ?? true;
  const set = makeSubjectReferenceSet(o.subjectSeed, {
    count: o.referenceCount,
    withDistractor: o.referenceCount,
  });
  const subject = set.subject;
  const lookalikes = set.images.map((im) => {
    const d = im.scene.objects[im.distractor!]!;
    return { shape: d.shape, colour: d.colour, pattern: d.pattern };
  });
  const { referencePaths, annotationPath } = await writeReferences(o, set, negative);
  const { maskDir, masks } = await maskReferences(o, set, annotationPath);
  const started = Date.now();
  const train = await fineTune(o, set, maskDir);
  const trainSeconds = (Date.now() - started) / 1000;
  const backgrounds = o.backgrounds ?? newContexts(set, 4);
  const gen = await generateInContexts(o, train.adapterPath, backgrounds);
  const generated = judge(o, gen.images, backgrounds, subject, lookalikes);
  return {
    subject,
    lookalikes,
    negativePoint: negative,
    referencePaths,
    annotationPath,
    masks,
    losses: train.losses,
    trainSeconds,
    adapterPath: train.adapterPath,
    generated,
    contactSheet: gen.contactSheetPath,
    ...scores(generated, subject, lookalikes),
  };
}

/** 1. Reference photos and the clicks a user would make (subject.json). */
async function writeReferences(
  o: Resolved,
  set: SubjectReferenceSet,
  negative: boolean,
): Promise<{ referencePaths: string[]; annotationPath: string }> {
  const refDir = join(o.outDir, 'references');
  mkdirSync(refDir, { recursive: true });
  const referencePaths: string[] = [];
  for (const [k, im] of set.images.entries()) {
    const path = join(refDir, `ref-${k}.png`);
    await writePng(path, sceneImage(im.scene));
    referencePaths.push(path);
  }
  const annotationPath = join(o.outDir, 'subject.json');
  writeFileSync(
    annotationPath,
    `${JSON.stringify(
      {
        version: 1,
        identifier: 'sks',
        classWord: set.subject.shape,
        images: set.images.map((im, k) => ({
          path: `references/ref-${k}.png`,
          positive: [[im.positive.x, im.positive.y]],
          ...(negative && im.negative ? { negative: [[im.negative.x, im.negative.y]] } : {}),
        })),
      },
      null,
      2,
    )}\n`,
  );
  return { referencePaths, annotationPath };
}

/** 2. RNGR masks and filled references (Eq. 1–3), each subject mask scored against the truth. */
async function maskReferences(
  o: Resolved,
  set: SubjectReferenceSet,
  annotationPath: string,
): Promise<{ maskDir: string; masks: ExperimentResult['masks'] }> {
  const maskDir = join(o.outDir, 'mask');
  const mask = await runMaskJob({
    annotationPath,
    clipFolder: join(o.modelFolder, 'image_encoder'),
    outDir: maskDir,
    layer: o.maskLayer,
    dense: o.maskDense,
    propagate: false,
  });
  const masks = mask.results.map((r, k) => ({
    overlay: join(maskDir, `ref-${k}.overlay.png`),
    filled: join(maskDir, `ref-${k}.filled.png`),
    subjectIoU: maskIoU(r.subject.mask, set.images[k]!.scene.objects[set.images[k]!.subject]!.mask),
  }));
  return { maskDir, masks };
}

/** 3. P3S fine-tuning on the filled references. */
function fineTune(o: Resolved, set: SubjectReferenceSet, maskDir: string): Promise<TrainP3SResult> {
  const observers = o.onTrainProgress ? [{ onStep: o.onTrainProgress }] : [];
  return trainP3S(
    {
      ...o.train,
      baseModel: o.modelFolder,
      clipModel: join(o.modelFolder, 'image_encoder'),
      outDir: join(o.outDir, 'train'),
      references: [maskDir],
      identifier: 'sks',
      classWord: set.subject.shape,
      maxSteps: o.steps,
      learningRate: o.learningRate,
      seed: o.seed ?? 0,
      checkpointEvery: 0,
      evaluate: false,
    },
    { observers },
  );
}

/** 4. The subject in new contexts. */
function generateInContexts(
  o: Resolved,
  adapter: string,
  backgrounds: BackgroundName[],
): Promise<GenerateP3SResult> {
  return generateP3S(
    {
      ...o.generate,
      baseModel: o.modelFolder,
      adapter,
      outDir: join(o.outDir, 'generated'),
      prompts: backgrounds.map((b) => `a {} ${BACKGROUND_PHRASES[b]}`),
      numImages: o.imagesPerPrompt,
      seed: o.seed ?? 0,
      steps: o.sampleSteps,
      guidanceScale: o.guidanceScale,
    },
    { onProgress: o.onGenerateProgress },
  );
}

/** 5. The probe's verdict on each generated image. */
function judge(
  o: Resolved,
  images: GeneratedImage[],
  backgrounds: BackgroundName[],
  subject: ObjectAttributes,
  lookalikes: ObjectAttributes[],
): GeneratedVerdict[] {
  const seen = probeImages(
    o.probe,
    images.map((g): RgbImage => g.image),
  );
  return images.map((g, i) => ({
    path: g.path,
    prompt: g.prompt,
    background: backgrounds[Math.floor(i / o.imagesPerPrompt)]!,
    seen: seen[i]!,
    isSubject: sameLook(seen[i]!, subject),
    isLookalike: lookalikes.some((l) => sameLook(seen[i]!, l)),
  }));
}

/** The shares of generated images with the subject's or a look-alike's attributes. */
function scores(
  generated: GeneratedVerdict[],
  subject: ObjectAttributes,
  lookalikes: ObjectAttributes[],
): Pick<
  ExperimentResult,
  | 'fidelity'
  | 'lookalikeRate'
  | 'colourFidelity'
  | 'lookalikeColourRate'
  | 'shapeAccuracy'
  | 'backgroundAccuracy'
> {
  const otherColours = new Set<string>(
    lookalikes.map((l) => l.colour).filter((c) => c !== subject.colour),
  );
  const share = (f: (g: GeneratedVerdict) => boolean) =>
    generated.filter(f).length / Math.max(1, generated.length);
  return {
    fidelity: share((g) => g.isSubject),
    lookalikeRate: share((g) => g.isLookalike),
    colourFidelity: share((g) => g.seen.colour === subject.colour),
    lookalikeColourRate: share((g) => otherColours.has(g.seen.colour)),
    shapeAccuracy: share((g) => g.seen.shape === subject.shape),
    backgroundAccuracy: share((g) => g.seen.background === g.background),
  };
}
