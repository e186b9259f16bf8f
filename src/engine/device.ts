// Devices: CPU always, CUDA where the libtorch the core was built against has it.
import { native } from './native.js';

export type Device = 'cpu' | `cuda` | `cuda:${number}`;

export const cuda = {
  isAvailable: (): boolean => native.cudaAvailable(),
  deviceCount: (): number => native.cudaDeviceCount(),
  /** Waits for all queued work on a device (the current one by default). */
  synchronize: (index?: number): void => native.cudaSynchronize(index),
};

export function libtorchVersion(): string {
  return native.libtorchVersion();
}

export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`Expected a positive integer for threads but received ${n}`);
  }
  native.setNumThreads(n);
}

export function getNumThreads(): number {
  return native.getNumThreads();
}
