import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  CLIPTokenizer,
  cleanText,
  fixText,
  htmlUnescape,
} from '../../src/tokenizers/clip_tokenizer.js';
import { fixturePath } from '../helpers/paths.js';

interface Case {
  kind: string;
  prompt: string;
  input_ids: number[];
  attention_mask: number[];
  untruncated_ids: number[];
  tokens: string[];
  openai_ids: number[];
  input_ids_without_ftfy?: number[];
}

const fixtureDir = fixturePath('clip-tokenizer');
const fixture = JSON.parse(readFileSync(fixturePath('clip-tokenizer', 'cases.json'), 'utf8')) as {
  n_cases: number;
  cases: Case[];
};
const hf = CLIPTokenizer.fromPretrained(fixtureDir);
const openai = CLIPTokenizer.fromOpenAIBpe(
  fixturePath('clip-tokenizer', 'bpe_simple_vocab_16e6.txt.gz'),
);
const tinySd = CLIPTokenizer.fromPretrained(fixturePath('tiny-sd', 'tokenizer'));
const unpadded = { padding: 'none', truncation: false } as const;

describe('CLIPTokenizer reference cases', () => {
  it('has all 79 cases', () => {
    assert.equal(fixture.cases.length, 79);
    assert.equal(fixture.n_cases, 79);
  });

  for (const [i, c] of fixture.cases.entries()) {
    it(`case ${i} (${c.kind}): ${JSON.stringify(c.prompt).slice(0, 60)}`, () => {
      // Where the no-ftfy fallback differs, the ftfy ids (input_ids) are the ones to match.
      const sd = hf.call(c.prompt, { padding: 'max_length', truncation: true, maxLength: 77 });
      assert.deepEqual(sd.inputIds, [c.input_ids]);
      assert.deepEqual(sd.attentionMask, [c.attention_mask]);
      assert.deepEqual(hf.call(c.prompt, unpadded).inputIds[0], c.untruncated_ids);
      assert.deepEqual(['<|startoftext|>', ...hf.tokenize(c.prompt), '<|endoftext|>'], c.tokens);
      assert.deepEqual(openai.call(c.prompt, unpadded).inputIds[0], c.openai_ids);
      assert.deepEqual(tinySd.call(c.prompt).inputIds[0], c.input_ids);
    });
  }
});

describe('CLIPTokenizer loading', () => {
  it('reads SD 1.5 conventions from the config', () => {
    for (const tok of [hf, tinySd, openai]) {
      assert.equal(tok.vocabSize, 49408);
      assert.equal(tok.modelMaxLength, 77);
      assert.equal(tok.bosTokenId, 49406);
      assert.equal(tok.eosTokenId, 49407);
      assert.equal(tok.padTokenId, 49407);
    }
  });

  it('takes the pad token and max length from the config (SD 2 pads with "!")', () => {
    const dir = mkdtempSync(join(tmpdir(), 'clip-tok-'));
    try {
      for (const f of ['vocab.json', 'merges.txt']) copyFileSync(join(fixtureDir, f), join(dir, f));
      writeFileSync(
        join(dir, 'tokenizer_config.json'),
        JSON.stringify({ model_max_length: 8, pad_token: '<|endoftext|>' }),
      );
      // special_tokens_map.json wins over tokenizer_config.json, as in transformers.
      writeFileSync(
        join(dir, 'special_tokens_map.json'),
        JSON.stringify({ pad_token: { content: '!' } }),
      );
      const tok = CLIPTokenizer.fromPretrained(dir);
      assert.equal(tok.padTokenId, 0);
      assert.equal(tok.modelMaxLength, 8);
      assert.deepEqual(tok.call('a dog').inputIds, [[49406, 320, 1929, 49407, 0, 0, 0, 0]]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('builds the same vocabulary from both file layouts', () => {
    const text = 'a sks dog, 東京 🐶 café ÅÆØ 1024x768';
    assert.deepEqual(openai.encode(text), hf.encode(text));
    assert.deepEqual(
      openai.convertIdsToTokens([0, 255, 256, 511, 512, 49405]),
      hf.convertIdsToTokens([0, 255, 256, 511, 512, 49405]),
    );
  });
});

describe('CLIPTokenizer behaviour', () => {
  const long = Array.from({ length: 120 }, (_, i) => `word${i}`).join(' ');

  it('truncates to 77 and keeps the end token at position 76', () => {
    const { inputIds, attentionMask } = hf.call(long);
    assert.equal(inputIds[0]!.length, 77);
    assert.equal(inputIds[0]![0], 49406);
    assert.equal(inputIds[0]![76], 49407);
    assert.deepEqual(inputIds[0]!.slice(1, 76), hf.encode(long).slice(0, 75));
    assert.ok(attentionMask[0]!.every((m) => m === 1));
  });

  it('truncates to a custom maxLength and leaves long input alone without truncation', () => {
    const short = hf.call(long, { maxLength: 10 }).inputIds[0]!;
    assert.equal(short.length, 10);
    assert.equal(short[9], 49407);
    const full = hf.call(long, { padding: 'max_length', truncation: false }).inputIds[0]!;
    assert.equal(full.length, hf.encode(long).length + 2);
  });

  it('encodes a batch row by row', () => {
    const prompts = ['a photo of a sks dog', 'a dog', '', long];
    const batch = hf.call(prompts);
    assert.equal(batch.inputIds.length, 4);
    prompts.forEach((p, i) => {
      const single = hf.call(p);
      assert.deepEqual(batch.inputIds[i], single.inputIds[0]);
      assert.deepEqual(batch.attentionMask[i], single.attentionMask[0]);
    });
  });

  it('pads to the longest row or not at all', () => {
    const longest = hf.call(['a dog', 'a photo of a dog'], { padding: 'longest' });
    assert.deepEqual(
      longest.inputIds,
      [
        [49406, 320, 1929, 49407, 49407, 49407],
        [49406, 320, 1125, 539, 320, 1929, 49407],
      ].map((r) => [...r, ...new Array<number>(7 - r.length).fill(49407)]),
    );
    assert.deepEqual(longest.attentionMask[0], [1, 1, 1, 1, 0, 0, 0]);
    const none = hf.call(['a dog', 'a photo of a dog'], unpadded);
    assert.deepEqual(
      none.inputIds.map((r) => r.length),
      [4, 7],
    );
  });

  it('rejects a maxLength with no room for start and end', () => {
    assert.throws(() => hf.call('a dog', { maxLength: 1 }), RangeError);
  });

  it('round-trips plain ASCII through decode', () => {
    for (const text of ['a photo of a sks dog', "a dog, a cat. it's here!", 'hello world?']) {
      assert.equal(hf.decode(hf.encode(text)), text);
      assert.equal(hf.decode(hf.call(text).inputIds[0]!, { skipSpecialTokens: true }), text);
    }
    assert.equal(hf.decode(hf.encode('A  Photo\tOF a DOG')), 'a photo of a dog');
    // Digits and other punctuation are words of their own, so spaces appear around them.
    assert.equal(hf.decode(hf.encode('3.14; 1024x768')), '3. 1 4 ; 1 0 2 4 x 7 6 8');
    assert.equal(hf.decode([49406, 320, 1929, 49407]), '<|startoftext|>a dog <|endoftext|>');
    assert.equal(hf.decode(hf.encode('東京 🐶 café')), '東京 🐶 café');
    assert.throws(() => hf.decode([49408]), RangeError);
  });

  it('handles any Unicode input', () => {
    const loneHigh = 'a \ud83d dog';
    const loneLow = 'a \ude00 dog';
    assert.deepEqual(hf.encode(loneHigh), hf.encode('a \ufffd dog'));
    assert.deepEqual(hf.encode(loneLow), hf.encode('a \ufffd dog'));
    for (const text of [
      '🐶🎒😀',
      '東京の犬',
      'ﷺ \u0000\u0001 \uffff',
      '\u{10ffff}\u{e0001}',
      'x'.repeat(5000),
    ]) {
      const ids = hf.encode(text);
      assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < 49408));
    }
  });
});

describe('text cleanup (ftfy subset, html.unescape)', () => {
  it('lower-cases, collapses and strips Python whitespace', () => {
    assert.equal(cleanText('  A\u00a0B\u2003C\u3000D\u2029E\n\tF\r\n '), 'a b c d e f');
    // ftfy drops most C0 controls and reads a lone \x85 as Windows-1252's ellipsis first.
    assert.equal(cleanText('c\x1cd \x85'), 'cd …');
    // U+FEFF is no whitespace to Python (unlike JS \s); ftfy removes it.
    assert.equal(cleanText('a\ufeffb'), 'ab');
  });

  it('unescapes HTML entities twice, after ftfy', () => {
    assert.equal(cleanText('html &amp; entities &lt;3'), 'html & entities <3');
    assert.equal(cleanText('&amp;amp;lt;'), '<');
    // With a '<' in the text ftfy leaves entities alone, but html.unescape still decodes them.
    assert.equal(cleanText('<b> it&rsquo;s'), '<b> it\u2019s');
    assert.equal(cleanText('it&rsquo;s'), "it's");
  });

  it('decodes references as Python html.unescape does', () => {
    assert.equal(htmlUnescape('&notit; &not &amp &ampx &copy2024'), '¬it; ¬ & &x ©2024');
    assert.equal(
      htmlUnescape('&#128; &#x110000; &#0; &#1; &#xd800; &#65 &#x41;'),
      '€ \ufffd \ufffd  \ufffd A A',
    );
    assert.equal(htmlUnescape('&NotNestedGreaterGreater; &bogus; &'), '\u2aa2\u0338 &bogus; &');
  });

  it('repairs what ftfy repairs', () => {
    assert.equal(fixText('mojibake cafÃ© text'), 'mojibake café text');
    assert.equal(
      fixText('The Mona Lisa doesnâ€™t have eyebrows.'),
      "The Mona Lisa doesn't have eyebrows.",
    );
    assert.equal(fixText('cafÃ© and naïve'), 'café and naïve');
    assert.equal(fixText('ﬂuﬀy ＦＵＬＬ\u3000ｗｉｄｔｈ'), 'fluffy FULL width');
    assert.equal(fixText('“quoted” ‘single’'), '"quoted" \'single\'');
    assert.equal(fixText('e\u0301\r\nline\u2028two'), 'é\nline\ntwo');
    assert.equal(fixText('\x1b[36mblue\x1b[0m\x00\x07'), 'blue');
    assert.equal(
      fixText('This text was never UTF-8 at all\x85'),
      'This text was never UTF-8 at all…',
    );
    assert.equal(fixText('P&EACUTE;REZ &lt;3'), 'PÉREZ <3');
    // Legitimate accented text is left as it is.
    for (const text of ['café naïve résumé Ünïcödé ÅÆØ', 'Straße', 'ÉTÉ', '¿Qué?', '1 × 2 ≥ ½°']) {
      assert.equal(fixText(text), text);
    }
  });

  it('matches the fixture mojibake case', () => {
    const c = fixture.cases.find((x) => x.prompt === 'mojibake cafÃ© text')!;
    assert.deepEqual(hf.call(c.prompt).inputIds[0], c.input_ids);
    assert.notDeepEqual(c.input_ids_without_ftfy, c.input_ids);
  });
});
