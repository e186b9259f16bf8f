// The shipped models' measured quality (quality.json, ToyQuality in apps/toymodels/evaluate.ts)
// as rows with explanations. The file is read as untyped data: older files lack later fields,
// and what is missing is left out rather than failing the report.
import { CHANCE, numberTable, type NumberGroup, type NumberRow } from './report_tables.js';

type Json = Record<string, unknown>;

const obj = (v: unknown): Json | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const str = (v: unknown): string => (v === undefined || v === null ? '?' : String(v));

const one = (
  label: string,
  value: unknown,
  explain: string,
  format: NumberRow['format'] = 'share',
  chance?: number,
): NumberRow => ({ label, values: [num(value)], format, chance, explain });

function clipGroup(q: Json): NumberGroup | null {
  const r = obj(q.clipRetrieval);
  if (!r) return null;
  const candidates = num(r.candidates);
  const chance = candidates ? 1 / candidates : undefined;
  return {
    heading: `Toy CLIP: image → caption retrieval on ${str(r.count)} held-out scenes, ${str(candidates)} captions each`,
    rows: [
      one(
        'retrieval',
        r.accuracy,
        'the true caption ranks first among captions of other scenes',
        'share',
        chance,
      ),
      one(
        'hard retrieval',
        r.hardAccuracy,
        'the true caption ranks first among captions that each change one attribute',
        'share',
        chance,
      ),
    ],
  };
}

/** The probe's four readings (and all at once) against the truth, as an AttributeAccuracy holds them. */
function attributeRows(a: Json, what: string): NumberRow[] {
  return [
    one('colour', a.colour, `${what}: colour read as the truth`, 'share', CHANCE.colour),
    one('shape', a.shape, `${what}: shape read as the truth`, 'share', CHANCE.shape),
    one('pattern', a.pattern, `${what}: pattern read as the truth`, 'share', CHANCE.pattern),
    one(
      'background',
      a.background,
      `${what}: background read as the truth`,
      'share',
      CHANCE.background,
    ),
    one(
      'colour + pattern',
      a.colourAndPattern,
      `${what}: both right at once (what selective fidelity needs)`,
      'share',
      CHANCE.colourAndPattern,
    ),
    one(
      'all four',
      a.all,
      `${what}: colour, shape, pattern and background all right`,
      'share',
      CHANCE.all,
    ),
  ];
}

function attributeGroups(q: Json): NumberGroup[] {
  const groups: NumberGroup[] = [];
  const probe = obj(q.probe);
  if (probe)
    groups.push({
      heading: `The probe (the judge of every generated image) on ${str(probe.count)} held-out rendered scenes`,
      rows: attributeRows(probe, 'the probe on rendered scenes'),
    });
  const vae = obj(q.vaeRoundTrip);
  if (vae)
    groups.push({
      heading: `VAE round trip (encode, decode) of ${str(vae.count)} held-out scenes, read by the probe: about the most a generated image can show`,
      rows: attributeRows(vae, 'after the VAE'),
    });
  const gen = obj(q.generation);
  if (gen)
    groups.push({
      heading: `Base model text-to-image: ${str(gen.count)} held-out captions, ${str(gen.steps)} DDIM steps, guidance ${str(gen.guidanceScale)}, read by the probe`,
      rows: attributeRows(gen, 'generated image matches its caption'),
    });
  return groups;
}

/** The RNGR entry with the best subject mask, with its settings in the heading. */
function rngrGroup(q: Json): NumberGroup | null {
  const entries = Array.isArray(q.rngr) ? q.rngr.map(obj).filter((e) => e !== undefined) : [];
  const best = entries.reduce<Json | undefined>(
    (b, e) => ((num(e.subjectIoU) ?? -1) > (num(b?.subjectIoU) ?? -1) ? e : b),
    undefined,
  );
  if (!best) return null;
  return {
    heading: `RNGR masks (Eq. 1–3) on ${str(best.count)} held-out look-alike pairs, best of ${entries.length} settings: CLIP layer ${str(best.layer)}, grid ×${str(best.dense)}, ${str(best.rule)} rule, ${str(best.refine)} refinement`,
    rows: [
      one(
        'subject-mask IoU',
        best.subjectIoU,
        "overlap of the subject mask with the subject's true pixels (1 is exact)",
        'iou',
      ),
      one(
        'look-alike leak',
        best.distractorLeak,
        "share of the look-alike's pixels inside the subject mask (0 is best)",
        'share',
      ),
      one(
        'look-alike-mask IoU',
        best.distractorIoU,
        'overlap of the look-alike mask (the region filled) with its true pixels',
        'iou',
      ),
      one(
        'demo mask layer',
        q.maskLayer,
        'the CLIP hidden state p3s demo masks with, chosen by these measurements',
        'count',
      ),
      one(
        'demo grid density',
        q.maskDense,
        'the patch-grid refinement p3s demo masks with, chosen alike',
        'count',
      ),
    ],
  };
}

/** P3S fine-tuning over several subjects, with and without the negative click, as rows of two values. */
function selectiveGroup(q: Json, key: 'selective' | 'selectiveRecipe'): NumberGroup | null {
  const s = obj(q[key]);
  if (!s) return null;
  const neg = obj(s.withNegative) ?? {};
  const pos = obj(s.positiveOnly) ?? {};
  const two = (
    label: string,
    field: string,
    explain: string,
    format: NumberRow['format'],
    chance?: number,
  ): NumberRow => ({
    label,
    values: [num(neg[field]), num(pos[field])],
    format,
    chance,
    explain,
  });
  const adapter = key === 'selective' ? "the paper's adapter" : "the demo's recipe";
  return {
    heading: `Selective generation with ${adapter}: ${str(s.subjects)} evaluation subjects, ${str(s.steps)} fine-tuning steps, ${str(s.imagesPerSubject)} images each`,
    rows: [
      two(
        "subject's look",
        'fidelity',
        "images the probe reads with the subject's colour, pattern and shape (higher is better)",
        'share',
        CHANCE.colourAndPattern * CHANCE.shape,
      ),
      two(
        "a look-alike's look",
        'lookalikeRate',
        "images with a look-alike's colour and pattern instead (lower is better)",
        'share',
      ),
      two(
        'prompted context',
        'contextAccuracy',
        'images whose background is the one the prompt asked for',
        'share',
        CHANCE.background,
      ),
      two(
        "subject's colour",
        'colourFidelity',
        "images with the subject's colour, pattern aside",
        'share',
        CHANCE.colour,
      ),
      two(
        "a look-alike's other colour",
        'lookalikeColourRate',
        'images with a colour only a look-alike has',
        'share',
      ),
      two(
        'subject-mask IoU',
        'maskIoU',
        'mean overlap of the reference subject masks with the truth',
        'iou',
      ),
    ],
  };
}

/** The quality section, or '' without a quality file. */
export function modelQualitySection(quality: Record<string, unknown> | null): string {
  if (!quality) return '';
  const single = [clipGroup(quality), ...attributeGroups(quality), rngrGroup(quality)];
  const selective = [
    selectiveGroup(quality, 'selectiveRecipe'),
    selectiveGroup(quality, 'selective'),
  ];
  const keep = (gs: (NumberGroup | null)[]) => gs.filter((g): g is NumberGroup => g !== null);
  const tables = [
    numberTable(['value'], keep(single), 'numbers quality'),
    numberTable(['with negative click', 'positive click only'], keep(selective), 'numbers quality'),
  ].filter((t) => t !== '');
  if (tables.length === 0) return '';
  return `<section>
<h2>The shipped toy models, measured on held-out scenes (models/toy/quality.json)</h2>
<p>How good the pieces the demo stands on are. "Chance" is what a uniform guess among the toy world's colours, shapes, patterns or backgrounds would score.</p>
${tables.join('\n')}
</section>`;
}
