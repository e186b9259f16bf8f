// The toy world: procedural scenes of shapes on named backgrounds, with captions, exact instance
// masks and look-alike pairs. The embedded default's training data and selective-subject benchmark.

export * from './attributes.js';
export * from './backgrounds.js';
export * from './captions.js';
export * from './dataset.js';
export * from './pairs.js';
export * from './random.js';
export * from './scene.js';
export * from './shapes.js';
export * from './views.js';
