// Training the attribute probe (src/models/probe/attribute_probe.ts), the toy world's judge of
// generated images, on single-object scenes with light pixel noise.
import { randn, tensor } from '../../src/engine/creation.js';
import { Generator, manualSeed } from '../../src/engine/random.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { crossEntropy } from '../../src/nn/functional.js';
import { AdamW } from '../../src/optim/adam.js';
import {
  AttributeProbe,
  PROBE_ATTRIBUTES,
  PROBE_HEADS,
  type ProbeAttribute,
  type ProbeLabels,
} from '../../src/models/probe/attribute_probe.js';
import type { Scene } from '../../src/toyworld/scene.js';
import { scenes, scenesToTensor } from './data.js';
import { trainStage, type StageResult, type StageSettings } from './stage.js';

export {
  AttributeProbe,
  PROBE_ATTRIBUTES,
  PROBE_HEADS,
  probeImages,
  type ProbeAttribute,
  type ProbeLabels,
} from '../../src/models/probe/attribute_probe.js';

/** The true labels of a scene's first object (and its background). */
export function sceneLabels(scene: Scene): ProbeLabels {
  const o = scene.objects[0]!;
  return { colour: o.colour, shape: o.shape, pattern: o.pattern, background: scene.background };
}

function labelTensor(batch: readonly Scene[], k: ProbeAttribute): Tensor {
  const classes: readonly string[] = PROBE_HEADS[k];
  return tensor(
    batch.map((s) => classes.indexOf(sceneLabels(s)[k])),
    [batch.length],
    { dtype: 'int64' },
  );
}

export type ProbeStageOptions = StageSettings;

export const PROBE_STAGE_DEFAULTS = { steps: 1000, batchSize: 64, lr: 2e-3 };
const PROBE_FIRST_SCENE = 20_000_000;

export async function trainProbe(
  options: ProbeStageOptions,
): Promise<{ probe: AttributeProbe; result: StageResult }> {
  manualSeed(options.seed);
  const probe = new AttributeProbe();
  const optimizer = new AdamW(probe.parameters(), { lr: options.lr });
  const generator = new Generator(options.seed);
  const b = options.batchSize;
  const { model, result } = await trainStage({
    name: 'probe',
    settings: options,
    warmup: 50,
    maxGradNorm: null,
    model: probe,
    optimizer,
    generator,
    loss(step) {
      const batch = scenes('train', PROBE_FIRST_SCENE + step * b, b, { objectCount: 1 });
      // Light pixel noise: generated images are never as clean as rendered ones. (Random
      // saturation, contrast, brightness and blur as well made it read the U-Net's striped
      // circles worse, as black and dotted.)
      const x = scenesToTensor(batch);
      const heads = probe.heads(x.add(randn(x.shape, { generator }).mul(0.05)));
      return PROBE_ATTRIBUTES.map((k) => crossEntropy(heads[k], labelTensor(batch, k))).reduce(
        (a, l) => a.add(l),
      );
    },
  });
  return { probe: model, result };
}
