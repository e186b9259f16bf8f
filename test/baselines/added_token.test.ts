// A token added for Textual Inversion / Custom Diffusion: one token in the tokenizer, a row
// after the text encoder's table, gradients on that row only, removable again, and the
// learned_embeds file diffusers reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setNumThreads } from '../../src/engine/index.js';
import { noGrad } from '../../src/engine/autograd.js';
import { tidy } from '../../src/engine/scope.js';
import { StableDiffusionPipeline } from '../../src/pipelines/stable_diffusion.js';
import { AddedToken } from '../../src/baselines/added_token.js';
import { fixturePath } from '../helpers/paths.js';

setNumThreads(1);

test('"a <sks>" with the class word\'s embedding encodes exactly as "a toy"; gradients reach the row only', () => {
  const pipeline = StableDiffusionPipeline.fromPretrained(fixturePath('tiny-sd'));
  pipeline.textEncoder.freeze();
  try {
    assert.equal(pipeline.tokenizer.encode('toy').length, 1, 'the fixture has "toy" as one token');
    const token = AddedToken.fromClassWord(pipeline, '<sks>', 'toy');
    const remove = token.install(pipeline);
    const ids = pipeline.tokenizer.encode('a <sks>, A <sks>');
    assert.equal(ids.length, 5);
    assert.equal(ids[1], pipeline.textEncoder.text_model.embeddings.token_embedding.numEmbeddings);
    const encode = (prompt: string) =>
      pipeline.textEncoder.forward(pipeline.tokenize([prompt])).lastHiddenState;
    const difference = noGrad(() =>
      tidy(() => encode('a <sks>').sub(encode('a toy')).abs().max().item()),
    );
    assert.equal(difference, 0);
    tidy(() => encode('a photo of <sks>').square().sum().backward());
    assert.ok(token.embedding.grad !== null, 'the token has a gradient');
    const frozen = pipeline.textEncoder.parameters().filter((p) => p.grad !== null);
    assert.equal(frozen.length, 0, 'the text encoder has none');
    remove();
    assert.ok(pipeline.tokenizer.encode('<sks>').length > 1, 'the tokenizer is as loaded again');
    const dir = mkdtempSync(join(tmpdir(), 'p3s-token-'));
    try {
      token.save(join(dir, 'learned_embeds.safetensors'), {});
      const back = AddedToken.load(join(dir, 'learned_embeds.safetensors'));
      assert.equal(back.token, '<sks>');
      assert.deepEqual(back.embedding.shape, [1, 32]);
      back.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    token.dispose();
  } finally {
    pipeline.dispose();
  }
});
