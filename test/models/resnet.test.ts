import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, manualSeed, noGrad, ops, randn, tidy, zeros } from '../../src/index.js';
import { F, type Module } from '../../src/nn/index.js';
import { Downsample2D, ResnetBlock2D, Upsample2D } from '../../src/models/resnet.js';
import { assertClose } from '../helpers/tensors.js';

const TOL = { atol: 1e-5, rtol: 1e-5 };
const asData = (t: Tensor): { shape: readonly number[]; data: number[] } => ({
  shape: t.shape,
  data: t.toArray(),
});

function perturb<M extends Module>(m: M): M {
  noGrad(() => {
    for (const p of m.parameters()) ops.add_(p, randn([...p.shape]).mul(0.1), 1);
  });
  return m;
}

/** diffusers' ResnetBlock2D written from the state dict, for groups 2 and eps 1e-6. */
function naiveResnet(
  p: Map<string, Tensor>,
  x: Tensor,
  temb: Tensor | null,
  scaleShift: boolean,
  outputScale = 1,
): Tensor {
  const gn = (t: Tensor, name: string): Tensor =>
    F.groupNorm(t, 2, p.get(`${name}.weight`)!, p.get(`${name}.bias`)!, 1e-6);
  const conv = (t: Tensor, name: string, padding: number): Tensor =>
    F.conv2d(t, p.get(`${name}.weight`)!, p.get(`${name}.bias`)!, { padding });
  let h = conv(F.silu(gn(x, 'norm1')), 'conv1', 1);
  const t = temb
    ? F.linear(F.silu(temb), p.get('time_emb_proj.weight')!, p.get('time_emb_proj.bias')!)
    : null;
  if (t && scaleShift) {
    const c = h.shape[1]!;
    const scale = t.slice(1, 0, c).unsqueeze(-1).unsqueeze(-1);
    const shift = t.slice(1, c).unsqueeze(-1).unsqueeze(-1);
    h = gn(h, 'norm2').mul(scale.add(1)).add(shift);
  } else {
    if (t) h = h.add(t.unsqueeze(-1).unsqueeze(-1));
    h = gn(h, 'norm2');
  }
  h = conv(F.silu(h), 'conv2', 1);
  const skip = p.has('conv_shortcut.weight') ? conv(x, 'conv_shortcut', 0) : x;
  return skip.add(h).div(outputScale);
}

test('ResnetBlock2D: time embedding added, conv_shortcut when the width changes', () => {
  manualSeed(0);
  const r = perturb(
    new ResnetBlock2D({ inChannels: 4, outChannels: 6, tembChannels: 5, groups: 2 }),
  );
  const same = perturb(new ResnetBlock2D({ inChannels: 4, tembChannels: 5, groups: 2 }));
  assert.deepEqual(
    [...r.stateDict().keys()],
    [
      'norm1.weight',
      'norm1.bias',
      'conv1.weight',
      'conv1.bias',
      'time_emb_proj.weight',
      'time_emb_proj.bias',
      'norm2.weight',
      'norm2.bias',
      'conv2.weight',
      'conv2.bias',
      'conv_shortcut.weight',
      'conv_shortcut.bias',
    ],
  );
  assert.ok(!same.stateDict().has('conv_shortcut.weight'));
  noGrad(() =>
    tidy(() => {
      const x = randn([2, 4, 3, 5]);
      const temb = randn([2, 5]);
      assertClose(r.forward(x, temb), asData(naiveResnet(r.stateDict(), x, temb, false)), TOL);
      assertClose(
        same.forward(x, temb),
        asData(naiveResnet(same.stateDict(), x, temb, false)),
        TOL,
      );
    }),
  );
});

test('ResnetBlock2D: scale_shift, output scale factor, and no time embedding (VAE)', () => {
  manualSeed(1);
  const ss = perturb(
    new ResnetBlock2D({
      inChannels: 4,
      tembChannels: 3,
      groups: 2,
      timeEmbeddingNorm: 'scale_shift',
      outputScaleFactor: 2,
    }),
  );
  assert.deepEqual(ss.stateDict().get('time_emb_proj.weight')!.shape, [8, 3]);
  const vae = perturb(
    new ResnetBlock2D({ inChannels: 4, outChannels: 2, tembChannels: null, groups: 2 }),
  );
  assert.ok(![...vae.stateDict().keys()].some((k) => k.startsWith('time_emb_proj')));
  noGrad(() =>
    tidy(() => {
      const x = randn([1, 4, 4, 4]);
      const temb = randn([1, 3]);
      assertClose(ss.forward(x, temb), asData(naiveResnet(ss.stateDict(), x, temb, true, 2)), TOL);
      assertClose(vae.forward(x), asData(naiveResnet(vae.stateDict(), x, null, false)), TOL);
    }),
  );
});

test('ResnetBlock2D: dropout acts only in training mode', () => {
  manualSeed(2);
  const r = new ResnetBlock2D({ inChannels: 4, tembChannels: null, groups: 2, dropout: 0.5 });
  noGrad(() =>
    tidy(() => {
      const x = randn([1, 4, 4, 4]);
      r.eval();
      assert.deepEqual(r.forward(x).toArray(), r.forward(x).toArray());
      r.train();
      assert.notDeepEqual(r.forward(x).toArray(), r.forward(x).toArray());
    }),
  );
});

test('Downsample2D: stride-2 conv; padding 0 pads right and bottom first', () => {
  manualSeed(3);
  const d1 = perturb(new Downsample2D(4));
  const d0 = perturb(new Downsample2D(4, 6, 0));
  assert.deepEqual([...d0.stateDict().keys()], ['conv.weight', 'conv.bias']);
  noGrad(() =>
    tidy(() => {
      const x = randn([1, 4, 7, 5]);
      const p1 = d1.stateDict();
      const p0 = d0.stateDict();
      const a = d1.forward(x);
      assert.deepEqual(a.shape, [1, 4, 4, 3]);
      assertClose(
        a,
        asData(
          F.conv2d(x, p1.get('conv.weight')!, p1.get('conv.bias')!, { stride: 2, padding: 1 }),
        ),
        TOL,
      );
      const b = d0.forward(x);
      assert.deepEqual(b.shape, [1, 6, 3, 2]);
      const padded = ops.cat([ops.cat([x, zeros([1, 4, 7, 1])], 3), zeros([1, 4, 1, 6])], 2);
      assertClose(
        b,
        asData(F.conv2d(padded, p0.get('conv.weight')!, p0.get('conv.bias')!, { stride: 2 })),
        TOL,
      );
    }),
  );
});

test('Upsample2D: nearest 2× (or to a given size), then a 3×3 conv', () => {
  const u = new Upsample2D(2);
  // An identity convolution leaves the nearest-neighbour upsampling visible.
  const identity = zeros([2, 2, 3, 3]);
  noGrad(() => {
    ops.fill_(identity.select(0, 0).select(0, 0).select(0, 1).slice(0, 1, 2), 1);
    ops.fill_(identity.select(0, 1).select(0, 1).select(0, 1).slice(0, 1, 2), 1);
  });
  u.loadStateDict({ 'conv.weight': identity, 'conv.bias': zeros([2]) });
  noGrad(() =>
    tidy(() => {
      const x = randn([1, 2, 2, 3]);
      const up = u.forward(x);
      assert.deepEqual(up.shape, [1, 2, 4, 6]);
      const xs = x.toArray();
      const ys = up.toArray();
      for (let c = 0; c < 2; c++)
        for (let i = 0; i < 4; i++)
          for (let j = 0; j < 6; j++) {
            assert.equal(ys[c * 24 + i * 6 + j], xs[c * 6 + (i >> 1) * 3 + (j >> 1)]);
          }
      assert.deepEqual(u.forward(x, [3, 5]).shape, [1, 2, 3, 5]);
    }),
  );
});
