// Local injection: which layers' maps it reads, which prompt tokens, the region it builds from
// them, and that the frozen U-Net with the adapter attached applies it where it says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Generator,
  disposeAll,
  manualSeed,
  noGrad,
  ones,
  randn,
  tensor,
  tidy,
  zeros,
} from '../../../src/index.js';
import * as ops from '../../../src/engine/ops.generated.js';
import { UNet2DConditionModel } from '../../../src/models/unet/unet_2d_condition.js';
import { P3SAdapter, P3SUNet, DEFAULT_SETTINGS } from '../../../src/p3s/adapter/p3s_unet.js';
import {
  regionAt,
  regionLayerKeys,
  subjectRegion,
  wordTokenPositions,
} from '../../../src/p3s/adapter/subject_region.js';
import { parseWeightCurve } from '../../../src/p3s/adapter/weight_schedule.js';
import { CLIPTokenizer } from '../../../src/tokenizers/clip_tokenizer.js';
import { fixturePath, repoRoot } from '../../helpers/paths.js';
import { join } from 'node:path';

const unet = UNet2DConditionModel.fromPretrained(fixturePath('tiny-sd', 'unet'));
unet.freeze();

test('the region layers are the first up block with cross-attention', () => {
  const keys = regionLayerKeys(unet.attnProcessors().keys());
  assert.ok(keys.length > 0);
  for (const k of keys)
    assert.match(k, /^up_blocks\.1\.attentions\.\d+\.transformer_blocks\.0\.attn2\.processor$/);
  assert.throws(
    () => regionLayerKeys(['down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor']),
    /cross-attention in its up blocks/,
  );
});

test("the subject's words are found as whole words, after the start token", () => {
  const tokenizer = CLIPTokenizer.fromPretrained(join(repoRoot(), 'models', 'toy', 'tokenizer'));
  const positions = (prompt: string, words: string[]) =>
    wordTokenPositions(tokenizer, prompt, words);
  assert.deepEqual(positions('a sks star on the beach', ['sks', 'star']), [2, 3]);
  assert.deepEqual(positions('a photo of sks', ['sks', 'star']), [4]);
  assert.deepEqual(positions('a star and a sks star', ['sks', 'star']), [2, 5, 6]);
  assert.deepEqual(positions('a dog on the beach', ['sks', 'star']), []);
});

test('the region: each map summed over the words, averaged over heads and layers, scaled to its range', () => {
  tidy(() => {
    // two images (rows 2, 3 of a guidance batch of 4), one head, a 2×2 latent, 3 tokens
    const word = [
      [0.1, 0.5, 0.9, 0.3],
      [0.2, 0.2, 0.6, 1.0],
    ];
    const data: number[] = [];
    for (const row of [null, null, ...word])
      for (let p = 0; p < 4; p++) data.push(0.5, row ? row[p]! : 9, 0);
    const full = tensor(data, [4, 1, 4, 3]);
    // a second layer at half the resolution: one position, so it adds a constant per image
    const coarse = tensor([0, 9, 0, 0, 9, 0, 0, 2, 0, 0, 4, 0], [4, 1, 1, 3]);
    const region = subjectRegion([full, coarse], {
      tokens: [1],
      latentSize: [2, 2],
      share: 0.5,
      rows: [2, 4],
      repeat: 2,
    });
    assert.deepEqual(region.shape, [4, 1, 2, 2]);
    const got = region.toArray().map((x) => Math.round(x * 1000) / 1000);
    const first = [0, 1, 1, 0.5]; // (0.1, 0.5, 0.9, 0.3) scaled to (0, .5, 1, .25), / 0.5
    const second = [0, 0, 1, 1]; // (0.2, 0.2, 0.6, 1.0) to (0, 0, .5, 1)
    assert.deepEqual(got, [...first, ...second, ...first, ...second]);
    // no word in the prompt: injected everywhere
    const everywhere = subjectRegion([full], {
      tokens: [],
      latentSize: [2, 2],
      share: 0.5,
      rows: [2, 4],
      repeat: 1,
    });
    assert.deepEqual(everywhere.toArray(), new Array(8).fill(1));
    // a layer sees the region averaged over its cells
    assert.deepEqual(
      regionAt(region, 1)
        .toArray()
        .map((x) => Math.round(x * 1000) / 1000),
      [0.625, 0.5, 0.625, 0.5],
    );
  });
});

/** An adapter like a trained one: every weight perturbed, so it changes the output. */
function trainedLikeAdapter(): P3SAdapter {
  manualSeed(0);
  const adapter = new P3SAdapter(unet, 24);
  noGrad(() => {
    const g = new Generator(11);
    for (const p of adapter.parameters()) {
      const noise = randn(p.shape, { generator: g });
      ops.add_(p, noise, 0.05);
      noise.dispose();
    }
  });
  return adapter;
}

test('the region weights the injected features: 1 is full injection, 0 the frozen U-Net, per position', () => {
  const adapter = trainedLikeAdapter();
  const settings = { ...DEFAULT_SETTINGS, weightCurve: parseWeightCurve('fixed:1') };
  const p3s = new P3SUNet(unet, adapter, { ...settings, injectionMode: 'aligned' }, true);
  try {
    tidy(() => {
      const g = new Generator(2);
      const xt = randn([2, 4, 8, 8], { generator: g });
      const ctx = randn([2, 77, 32], { generator: g });
      const cond = {
        latent: randn([1, 4, 8, 8], { generator: g }),
        clipStates: randn([1, 5, 24], { generator: g }),
      };
      const t = [600, 600];
      const run = (region: ReturnType<typeof ones> | null) =>
        noGrad(() => {
          const out = p3s.forward(xt, t, ctx, cond, { region });
          assert.ok(out.regionAttention !== null, 'region maps are captured');
          for (const m of out.regionAttention) assert.deepEqual([m.shape[0], m.shape[3]], [2, 77]);
          disposeAll(out.regionAttention);
          return out.noisePred;
        });
      const everywhere = run(null);
      const plain = noGrad(() => unet.forward(xt, tensor(t, [2], { dtype: 'int64' }), ctx));
      assert.ok(everywhere.sub(plain).abs().max().item() > 1e-3, 'the adapter changes the output');
      assert.deepEqual(run(ones([2, 1, 8, 8])).toArray(), everywhere.toArray());
      assert.ok(
        run(zeros([2, 1, 8, 8]))
          .sub(plain)
          .abs()
          .max()
          .item() < 1e-5,
      );
      // the left half only: the right half's output moves less from the frozen U-Net's than
      // the left's (the U-Net's receptive field spreads some of it), unlike full injection
      const left = ops.cat([ones([2, 1, 8, 4]), zeros([2, 1, 8, 4])], 3);
      const ratio = (out: typeof plain) => {
        const moved = out.sub(plain).abs();
        const side = (from: number) =>
          moved
            .slice(3, from, from + 4)
            .mean()
            .item();
        return side(0) / side(4);
      };
      const local = ratio(run(left));
      const full = ratio(everywhere);
      assert.ok(local > 1.3 * full, `left/right ${local} against ${full} with full injection`);
    });
  } finally {
    p3s.detach();
    adapter.dispose();
  }
});

test('without region capture the output carries no maps', () => {
  const adapter = trainedLikeAdapter();
  const p3s = new P3SUNet(unet, adapter);
  try {
    tidy(() => {
      const g = new Generator(3);
      const out = noGrad(() =>
        p3s.forward(
          randn([1, 4, 8, 8], { generator: g }),
          [500],
          randn([1, 77, 32], { generator: g }),
          {
            latent: randn([1, 4, 8, 8], { generator: g }),
            clipStates: randn([1, 5, 24], { generator: g }),
          },
        ),
      );
      assert.equal(out.regionAttention, null);
    });
  } finally {
    p3s.detach();
    adapter.dispose();
  }
});
