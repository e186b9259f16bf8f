// Which subjects a toy-world experiment runs on, as its --subjects flag names them.
import { UsageError } from '../cli/args.js';
import { EVALUATION_SUBJECTS, TUNING_SUBJECTS } from './recipes.js';

/** evaluation (the default), tuning, or a comma-separated list of reference-set seeds. */
export function subjectSeeds(value: unknown): readonly number[] {
  const given = String(value ?? 'evaluation');
  if (given === 'evaluation') return EVALUATION_SUBJECTS;
  if (given === 'tuning') return TUNING_SUBJECTS;
  const seeds = given.split(',').map((s) => Number(s.trim()));
  if (seeds.length === 0 || !seeds.every((s) => Number.isSafeInteger(s) && s >= 0)) {
    throw new UsageError(
      `Expected evaluation, tuning or a list of seeds for --subjects but received ${given}`,
    );
  }
  return seeds;
}
