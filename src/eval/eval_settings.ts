// Every setting of scoring generated images (`p3s eval`, scoreImages), declared once: the CLI's
// flags, --help and the one validation derive from this table (settings/table.ts). Which model
// folder a null CLIP/tokenizer setting means is decided in eval_models.ts, once the folders can
// be looked at.
import { nullable, path, positiveInt, text, texts, word } from '../settings/kinds.js';
import { setting, type GivenOf, type ValuesOf } from '../settings/table.js';

const INPUTS = 'Inputs and output';
const MODELS = 'Models';
const SUBJECT = 'Subject (override or supply what the PNG text chunks say)';
const TOY = 'Toy world only: selective fidelity read by the attribute probe';

export const EVAL_SETTINGS = [
  setting({
    key: 'generated',
    kind: path,
    default: '',
    required: true,
    flag: 'generated',
    placeholder: '<folder>',
    group: INPUTS,
    help: 'the generated PNGs (`p3s generate --out`); each carries its prompt, identifier and class word in text chunks. contact-sheet.png is skipped',
  }),
  setting({
    key: 'real',
    kind: texts,
    default: [],
    required: true,
    flag: 'real',
    placeholder: '<path>',
    group: INPUTS,
    help: 'a real photo of the subject or a folder of them (JPEG, PNG, WebP; a `p3s mask` folder gives its filled photos); repeatable',
    defaultHelp: '',
  }),
  setting({
    key: 'outFile',
    kind: nullable(path),
    default: null,
    flag: 'out',
    placeholder: '<file>',
    group: INPUTS,
    help: 'where the scores go (JSON, written atomically)',
    defaultHelp: 'default: eval.json in the --generated folder',
  }),
  setting({
    key: 'clipModel',
    kind: nullable(path),
    default: null,
    flag: 'clip',
    placeholder: '<folder>',
    group: MODELS,
    help: 'CLIP image tower with its projection: a CLIPVisionModelWithProjection folder (SD image_encoder/) or a whole transformers CLIP folder such as openai/clip-vit-large-patch14 (one config.json with text_config and vision_config; both towers and the tokenizer are then read from it). DreamBench uses CLIP ViT-L/14',
    defaultHelp: 'default: the shipped models/toy/image_encoder',
  }),
  setting({
    key: 'clipTextModel',
    kind: nullable(path),
    default: null,
    flag: 'clip-text',
    placeholder: '<folder>',
    group: MODELS,
    help: "CLIP text tower with its projection (CLIPTextModelWithProjection), for CLIP-T. SD 1.5's text_encoder/ has no projection and is refused",
    defaultHelp:
      'default: the --clip folder when it holds both towers, else text_encoder/ next to it',
  }),
  setting({
    key: 'tokenizer',
    kind: nullable(path),
    default: null,
    flag: 'tokenizer',
    placeholder: '<folder>',
    group: MODELS,
    help: 'CLIP tokenizer folder (vocab.json, merges.txt)',
    defaultHelp:
      'default: the text tower folder when it has vocab.json, else tokenizer/ next to it',
  }),
  setting({
    key: 'dinoModel',
    kind: nullable(path),
    default: null,
    flag: 'dino',
    placeholder: '<folder>',
    group: MODELS,
    help: 'DINO ViT folder (transformers ViTModel, e.g. facebook/dino-vits16) for DINO and DINO-v',
    defaultHelp: 'default: none; DINO is then reported as not measured',
  }),
  setting({
    key: 'batchSize',
    kind: positiveInt,
    default: 16,
    flag: 'batch-size',
    placeholder: '<n>',
    group: MODELS,
    help: 'images per model forward pass',
  }),
  setting({
    key: 'identifier',
    kind: nullable(word),
    default: null,
    flag: 'identifier',
    placeholder: '<word>',
    group: SUBJECT,
    help: 'the identifier in the prompts (e.g. sks), replaced by the class word for CLIP-T',
    defaultHelp: "default: each PNG's identifier chunk",
  }),
  setting({
    key: 'classWord',
    kind: nullable(text),
    default: null,
    flag: 'class',
    placeholder: '<word>',
    group: SUBJECT,
    help: 'the class word (e.g. dog)',
    defaultHelp: "default: each PNG's class_word chunk",
  }),
  setting({
    key: 'probe',
    kind: nullable(path),
    default: null,
    flag: 'probe',
    placeholder: '<folder>',
    group: TOY,
    help: "the toy world's attribute probe (models/toy/probe): adds how often the generated images show the subject's look, a look-alike's look, and the context each prompt names. Needs --subject-look",
    defaultHelp: 'default: none; the selective columns are then not measured',
  }),
  setting({
    key: 'subjectLook',
    kind: nullable(text),
    default: null,
    flag: 'subject-look',
    placeholder: '<words>',
    group: TOY,
    help: 'the subject as the toy world names it: colour, pattern adjective (none for solid) and shape, e.g. "blue striped circle"',
  }),
  setting({
    key: 'lookalikes',
    kind: texts,
    default: [],
    flag: 'look-alike',
    placeholder: '<words>',
    group: TOY,
    help: 'a look-alike the references showed beside the subject, named the same way ("red striped circle"); repeatable',
    defaultHelp: 'default: none; the look-alike column is then not measured',
  }),
] as const;

/** The resolved settings of an evaluation. */
export type EvalSettings = ValuesOf<typeof EVAL_SETTINGS>;
/** What scoreImages's caller gives: any subset of the table, the inputs required. */
export type EvalConfig = GivenOf<typeof EVAL_SETTINGS> & { generated: string; real: string[] };
