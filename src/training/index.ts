// The resumable training core shared by every trainer: the loop, checkpoints, run identity,
// observers, and the fine-tuning method interface.
export { runTraining, type TrainingLoop, type TrainingOutcome, type StepLoss } from './loop.js';
export type { StepReport, TrainingObserver } from './observer.js';
export { RunFolderError, TrainingDivergedError, TrainingInterruptedError } from './errors.js';
export { CheckpointError, listCheckpoints, latestCheckpoint } from './checkpoint.js';
export type { FineTuningMethod, MethodLoss, NoisedBatch } from './method.js';
export { warmupCosine } from './lr_schedule.js';
export { minSnrWeights } from './loss_weighting.js';
