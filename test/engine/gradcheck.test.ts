// Finite-difference gradient checks in float64: autograd's analytic gradients against central
// differences, for the layers the models are made of.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, Generator, randn, tensor, tidy, noGrad } from '../../src/index.js';
import * as F from '../../src/nn/functional.js';

/** Checks d(sum(f(xs) * probe))/dx for every input against central differences. */
function gradcheck(
  name: string,
  f: (xs: Tensor[]) => Tensor,
  shapes: number[][],
  eps = 1e-6,
  tol = 1e-6,
): void {
  tidy(() => {
    const g = new Generator(11);
    const inputs = shapes.map((s) => randn(s, { generator: g, dtype: 'float64' }).requiresGrad_());
    const out = f(inputs);
    const probe = randn([...out.shape], { generator: g, dtype: 'float64' });
    out.mul(probe).sum().backward();
    const scalar = (xs: Tensor[]): number =>
      noGrad(() => tidy(() => f(xs).mul(probe).sum().item()));
    inputs.forEach((x, which) => {
      const analytic = x.grad!.toArray();
      const values = x.detach().toArray();
      for (let i = 0; i < values.length; i++) {
        const perturbed = (delta: number): number =>
          tidy(() => {
            const v = Float64Array.from(values);
            v[i]! += delta;
            return scalar(inputs.map((y, j) => (j === which ? tensor(v, y.shape) : y.detach())));
          });
        const numeric = (perturbed(eps) - perturbed(-eps)) / (2 * eps);
        const err = Math.abs(numeric - analytic[i]!);
        assert.ok(
          err <= tol * Math.max(1, Math.abs(numeric)),
          `${name}: input ${which} element ${i}: analytic ${analytic[i]} vs numeric ${numeric}`,
        );
      }
    });
  });
}

test('conv2d gradients match finite differences', () => {
  gradcheck('conv2d', ([x, w, b]) => F.conv2d(x!, w!, b!, { stride: 2, padding: 1 }), [
    [1, 2, 5, 4],
    [3, 2, 3, 3],
    [3],
  ]);
});

test('group_norm gradients match finite differences', () => {
  gradcheck('group_norm', ([x, w, b]) => F.groupNorm(x!, 2, w!, b!), [[2, 4, 3, 2], [4], [4]]);
});

test('layer_norm gradients match finite differences', () => {
  gradcheck('layer_norm', ([x, w, b]) => F.layerNorm(x!, [6], w!, b!), [[2, 3, 6], [6], [6]]);
});

test('linear gradients match finite differences', () => {
  gradcheck('linear', ([x, w, b]) => F.linear(x!, w!, b!), [[3, 5], [4, 5], [4]]);
});

test('chunked attention gradients match finite differences', () => {
  const chunked = ([q, k, v]: Tensor[]) => F.chunkedAttention(q!, k!, v!, { chunkRows: 2 });
  gradcheck('chunked attention', chunked, [
    [1, 2, 5, 4],
    [1, 2, 3, 4],
    [1, 2, 3, 4],
  ]);
});

test('attention gradients match finite differences', () => {
  gradcheck('attention', ([q, k, v]) => F.scaledDotProductAttention(q!, k!, v!), [
    [1, 2, 3, 4],
    [1, 2, 5, 4],
    [1, 2, 5, 4],
  ]);
});
