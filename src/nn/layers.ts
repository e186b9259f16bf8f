// The basic layers, with torch.nn's parameter names so checkpoints load unchanged.
import { Tensor } from '../engine/tensor.js';
import { Module } from './module.js';
import * as F from './functional.js';
import { constantParameter, normalParameter, uniformParameter } from './init.js';
import { isFloatingDType } from '../engine/dtype.js';

function checkPositive(name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new RangeError(`Expected a positive integer for ${name} but received ${value}`);
  }
}

/**
 * x in its layer's weight dtype when the two differ: a layer computes in the precision of its
 * weights, so frozen weights held in bfloat16/float16 (models/precision.ts) run in it while the
 * float32 trainable layers beside them get float32 inputs — mixed-precision training's rule
 * (weights decide) without autocast, whose C++ API differs between libtorch 1.13 and 2.x.
 */
function inWeightDtype(x: Tensor, weight: Tensor | null): Tensor {
  if (weight === null) return x;
  const want = weight.dtype;
  return x.dtype === want || !isFloatingDType(x.dtype) ? x : x.to(want);
}

export class Linear extends Module {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    bias = true,
  ) {
    super();
    checkPositive('inFeatures', inFeatures);
    checkPositive('outFeatures', outFeatures);
    const bound = 1 / Math.sqrt(inFeatures);
    this.registerParameter('weight', uniformParameter([outFeatures, inFeatures], bound));
    this.registerParameter('bias', bias ? uniformParameter([outFeatures], bound) : null);
  }
  get weight(): Tensor {
    return this.param('weight');
  }
  get bias(): Tensor | null {
    return this.optionalParam('bias');
  }
  forward(x: Tensor): Tensor {
    return F.linear(inWeightDtype(x, this.weight), this.weight, this.bias);
  }
}

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
  bias?: boolean;
}

export class Conv2d extends Module {
  readonly stride: number;
  readonly padding: number;
  readonly dilation: number;
  readonly groups: number;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    options: Conv2dOptions = {},
  ) {
    super();
    checkPositive('inChannels', inChannels);
    checkPositive('outChannels', outChannels);
    checkPositive('kernelSize', kernelSize);
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    this.dilation = options.dilation ?? 1;
    this.groups = options.groups ?? 1;
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new RangeError(
        `Conv2d channels (${inChannels}, ${outChannels}) must be divisible by groups (${this.groups})`,
      );
    }
    const fanIn = (inChannels / this.groups) * kernelSize * kernelSize;
    const bound = 1 / Math.sqrt(fanIn);
    this.registerParameter(
      'weight',
      uniformParameter([outChannels, inChannels / this.groups, kernelSize, kernelSize], bound),
    );
    this.registerParameter(
      'bias',
      (options.bias ?? true) ? uniformParameter([outChannels], bound) : null,
    );
  }
  get weight(): Tensor {
    return this.param('weight');
  }
  get bias(): Tensor | null {
    return this.optionalParam('bias');
  }
  forward(x: Tensor): Tensor {
    return F.conv2d(inWeightDtype(x, this.weight), this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: this.groups,
    });
  }
}

export class GroupNorm extends Module {
  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    readonly eps = 1e-5,
    affine = true,
  ) {
    super();
    checkPositive('numGroups', numGroups);
    if (numChannels % numGroups !== 0) {
      throw new RangeError(
        `GroupNorm channels (${numChannels}) must be divisible by groups (${numGroups})`,
      );
    }
    this.registerParameter('weight', affine ? constantParameter([numChannels], 1) : null);
    this.registerParameter('bias', affine ? constantParameter([numChannels], 0) : null);
  }
  forward(x: Tensor): Tensor {
    return F.groupNorm(
      inWeightDtype(x, this.optionalParam('weight')),
      this.numGroups,
      this.optionalParam('weight'),
      this.optionalParam('bias'),
      this.eps,
    );
  }
}

export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  constructor(
    normalizedShape: number | number[],
    readonly eps = 1e-5,
    affine = true,
  ) {
    super();
    this.normalizedShape =
      typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
    this.registerParameter('weight', affine ? constantParameter(this.normalizedShape, 1) : null);
    this.registerParameter('bias', affine ? constantParameter(this.normalizedShape, 0) : null);
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(
      inWeightDtype(x, this.optionalParam('weight')),
      this.normalizedShape,
      this.optionalParam('weight'),
      this.optionalParam('bias'),
      this.eps,
    );
  }
}

export class Embedding extends Module {
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
  ) {
    super();
    checkPositive('numEmbeddings', numEmbeddings);
    checkPositive('embeddingDim', embeddingDim);
    this.registerParameter('weight', normalParameter([numEmbeddings, embeddingDim], 1));
  }
  get weight(): Tensor {
    return this.param('weight');
  }
  forward(ids: Tensor): Tensor {
    return F.embedding(this.weight, ids);
  }
}
