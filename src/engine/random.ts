// Seeded random-number generators. Pass a Generator to random ops for reproducible streams
// that do not depend on what else ran; manualSeed() reseeds the global default generators.
import { native, type GeneratorHandle } from './native.js';
import { Tensor } from './tensor.js';

function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`Expected a non-negative integer for seed but received ${seed}`);
  }
}

export class Generator {
  readonly handle: GeneratorHandle;
  readonly device: string;

  constructor(seed: number, device = 'cpu') {
    checkSeed(seed);
    this.handle = native.newGenerator(seed, device);
    this.device = device;
  }

  /** The generator's full state (a uint8 tensor), for checkpoints that must resume exactly. */
  getState(): Tensor {
    return new Tensor(
      native.generatorState(this.handle) as NonNullable<ReturnType<typeof native.generatorState>>,
    );
  }

  setState(state: Tensor): void {
    native.generatorState(this.handle, state.handle);
  }
}

/** Seeds the default CPU and CUDA generators, like torch.manual_seed. */
export function manualSeed(seed: number): void {
  checkSeed(seed);
  native.manualSeed(seed);
}
