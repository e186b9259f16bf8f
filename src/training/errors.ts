// How a training run ends early: it diverged (a non-finite loss or gradient), or it was asked to
// stop. Both name the checkpoint a resume continues from.

export class TrainingDivergedError extends Error {
  constructor(
    message: string,
    /** The step that diverged (1-based); nothing of it was applied. */
    readonly step: number,
    /** The newest checkpoint written before it, or null. */
    readonly lastCheckpoint: string | null,
  ) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

export class TrainingInterruptedError extends Error {
  constructor(
    message: string,
    /** Steps done when the run stopped. */
    readonly step: number,
    /** The checkpoint holding them. */
    readonly checkpoint: string | null,
  ) {
    super(message);
    this.name = 'TrainingInterruptedError';
  }
}
