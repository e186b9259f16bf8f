// The toy world's selective columns of `p3s eval` (what only a world with ground truth can
// measure): the attribute probe reads every generated image, and the run counts how often it
// shows the subject's look, a look-alike's look, and the context its prompt names.
import type { RgbImage } from '../io/image.js';
import { AttributeProbe, probeImages, type ProbeLabels } from '../models/probe/attribute_probe.js';
import type { BackgroundName, ObjectAttributes } from '../toyworld/attributes.js';
import { describeObject, promptBackground } from '../toyworld/captions.js';

/** The probe's reading of one image against the subject and its look-alikes. */
export interface LookVerdict {
  /** The subject's colour, pattern and shape. */
  isSubject: boolean;
  /** A look-alike's colour and pattern (look-alikes share the subject's shape). */
  isLookalike: boolean;
}

export interface ProbeVerdict extends LookVerdict {
  path: string;
  prompt: string;
  seen: ProbeLabels;
  /** The background the prompt names; null when it names none of the world's. */
  context: BackgroundName | null;
}

export interface SelectiveScores {
  probe: string;
  subject: string;
  lookalikes: string[];
  images: number;
  /** Share of images showing the subject's look. */
  subjectLook: number;
  /** Share showing a look-alike's look; null without --look-alike. */
  lookalikeLook: number | null;
  /** Share of the images whose prompt names a context that show it; null when none does. */
  context: number | null;
  contextImages: number;
  perImage: ProbeVerdict[];
}

const sameLook = (a: { colour: string; pattern: string }, b: ObjectAttributes) =>
  a.colour === b.colour && a.pattern === b.pattern;

/** The selective-fidelity rule, shared with the toy experiments. */
export function lookVerdict(
  seen: ProbeLabels,
  subject: ObjectAttributes,
  lookalikes: readonly ObjectAttributes[],
): LookVerdict {
  return {
    isSubject: sameLook(seen, subject) && seen.shape === subject.shape,
    isLookalike: lookalikes.some((l) => sameLook(seen, l)),
  };
}

/** The probe's verdicts on generated images (each with its prompt) and their shares. */
export function selectiveScores(
  probeFolder: string,
  images: readonly { path: string; prompt: string; image: RgbImage }[],
  subject: ObjectAttributes,
  lookalikes: readonly ObjectAttributes[],
): SelectiveScores {
  const probe = AttributeProbe.load(probeFolder);
  let seen: ProbeLabels[];
  try {
    seen = probeImages(
      probe,
      images.map((g) => g.image),
    );
  } finally {
    probe.dispose();
  }
  const perImage = images.map((g, i) => ({
    path: g.path,
    prompt: g.prompt,
    seen: seen[i]!,
    context: promptBackground(g.prompt),
    ...lookVerdict(seen[i]!, subject, lookalikes),
  }));
  const share = (rows: ProbeVerdict[], f: (v: ProbeVerdict) => boolean) =>
    rows.filter(f).length / rows.length;
  const withContext = perImage.filter((v) => v.context !== null);
  return {
    probe: probeFolder,
    subject: describeObject(subject),
    lookalikes: lookalikes.map((l) => describeObject(l)),
    images: perImage.length,
    subjectLook: share(perImage, (v) => v.isSubject),
    lookalikeLook: lookalikes.length > 0 ? share(perImage, (v) => v.isLookalike) : null,
    context:
      withContext.length > 0 ? share(withContext, (v) => v.seen.background === v.context) : null,
    contextImages: withContext.length,
    perImage,
  };
}
