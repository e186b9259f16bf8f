export { Adam, AdamW, type AdamOptions } from './adam.js';
export { clipGradNorm } from './clip_grad.js';
