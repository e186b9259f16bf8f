// A new token for the text encoder (Textual Inversion; Custom Diffusion's modifier token): one
// trainable embedding row, initialised from the class word's, that the tokenizer maps "<sks>"
// to and the text encoder looks up after its own table (CLIPTextEmbeddings.setAddedTokens).
// The checkpoint's token table is not touched, so gradients reach this row only.
//
// It is exchanged as diffusers' learned_embeds.safetensors: one tensor (1, D) keyed by the token
// string, which `pipe.load_textual_inversion(path)` reads.
import { noGrad } from '../engine/autograd.js';
import { tensor } from '../engine/creation.js';
import type { Tensor } from '../engine/tensor.js';
import * as ops from '../engine/ops.generated.js';
import { SafetensorsFile, saveSafetensors } from '../io/safetensors.js';
import { Module } from '../nn/module.js';
import * as F from '../nn/functional.js';
import type { StableDiffusionPipeline } from '../pipelines/stable_diffusion.js';

export const LEARNED_EMBEDS = 'learned_embeds.safetensors';

/** The token a run adds for its identifier: "sks" → "<sks>" (diffusers' examples' style). */
export const addedTokenFor = (identifier: string): string => `<${identifier}>`;

export class AddedToken extends Module {
  /** `init` (1, D) becomes the parameter (not copied). */
  constructor(
    readonly token: string,
    init: Tensor,
  ) {
    super();
    this.registerParameter('embedding', init);
  }

  get embedding(): Tensor {
    return this.param('embedding');
  }

  /** A fresh token whose embedding is the mean of the class word's token embeddings. */
  static fromClassWord(pipeline: StableDiffusionPipeline, token: string, classWord: string) {
    const ids = pipeline.tokenizer.encode(classWord);
    const table = tokenTable(pipeline);
    const init = noGrad(() =>
      F.embedding(table, tensor(ids, [ids.length], { dtype: 'int64' }))
        .mean([0], true)
        .float(),
    ); // (1, D)
    return new AddedToken(token, init);
  }

  /**
   * Adds the token to the pipeline's tokenizer and text encoder, so prompts with it encode
   * through this embedding; returns the function that removes it again.
   */
  install(pipeline: StableDiffusionPipeline): () => void {
    const embeddings = pipeline.textEncoder.text_model.embeddings;
    const width = embeddings.token_embedding.embeddingDim;
    if (this.embedding.shape[1] !== width)
      throw new RangeError(
        `The token ${this.token} has an embedding of ${this.embedding.shape[1]} values but this text encoder takes ${width}: it was trained for another base model`,
      );
    const known = pipeline.tokenizer.vocabSize;
    if (known !== embeddings.token_embedding.numEmbeddings)
      throw new RangeError(
        `The tokenizer has ${known} tokens but the text encoder ${embeddings.token_embedding.numEmbeddings}: the new token would not be the text encoder's next row`,
      );
    pipeline.tokenizer.addTokens([this.token]);
    const dtype = embeddings.token_embedding.weight.dtype;
    const rows = this.embedding.dtype === dtype ? this.embedding : this.embedding.to(dtype);
    embeddings.setAddedTokens(rows);
    return () => {
      embeddings.setAddedTokens(null);
      pipeline.tokenizer.removeAddedTokens();
      if (rows !== this.embedding) rows.dispose();
    };
  }

  /** Writes learned_embeds.safetensors: { token: (1, D) }, with p3s's metadata. */
  save(path: string, metadata: Record<string, string>): void {
    saveSafetensors(path, new Map([[this.token, this.embedding]]), metadata);
  }

  /** Reads a learned_embeds file: its one token and embedding (1, D); a clear error otherwise. */
  static load(path: string): AddedToken {
    const file = SafetensorsFile.open(path);
    const keys = file.keys();
    if (keys.length !== 1)
      throw new RangeError(
        `Expected one token embedding in ${path} (diffusers' learned_embeds format) but found ${keys.length} tensors`,
      );
    const t = file.tensor(keys[0]!);
    if (!(t.ndim === 1 || (t.ndim === 2 && t.shape[0] === 1))) {
      const shape = t.shape.join(', ');
      t.dispose();
      throw new RangeError(
        `Expected a token embedding of shape (1, D) or (D) in ${path} but found [${shape}]`,
      );
    }
    if (t.ndim === 2) return new AddedToken(keys[0]!, t);
    const row = t.unsqueeze(0); // (1, D)
    t.dispose();
    return new AddedToken(keys[0]!, row);
  }
}

/** The text encoder's token table (V, D). */
function tokenTable(pipeline: StableDiffusionPipeline): Tensor {
  return pipeline.textEncoder.text_model.embeddings.token_embedding.weight;
}

/**
 * The text context (B, L, D) of a batch: the prompt encoded now (so gradients reach the
 * token) for each sample, the batch's own (empty-prompt) row for each dropped one.
 */
export function encodeWithToken(
  pipeline: StableDiffusionPipeline,
  prompt: string,
  context: Tensor,
  dropped: readonly boolean[],
): Tensor {
  const encoded = pipeline.textEncoder.forward(pipeline.tokenize([prompt])).lastHiddenState;
  const rows = dropped.map((d, j) => (d ? context.slice(0, j, j + 1) : encoded)); // (1, L, D) each
  return ops.cat(rows, 0);
}
