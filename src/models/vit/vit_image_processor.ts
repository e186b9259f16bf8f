// ViT's image preprocessing as transformers 4.26's ViTImageProcessor computes it: resize to
// size.height × size.width with Pillow's filter (bilinear by default; the aspect ratio is not
// kept and nothing is cropped), rescale by 1/255 and normalise. DINO's preprocessor_config.json
// sets 224×224 and the ImageNet mean and std. The resize is Pillow-exact (src/io/image.ts).
import { Tensor } from '../../engine/tensor.js';
import { PIL_RESAMPLE, checkImage, resizeImage, type RgbImage } from '../../io/image.js';
import { readConfig } from '../loading.js';
import { pixelValues } from '../pixel_values.js';
import { processorConfigReader, type ProcessorConfigReader } from '../processor_config.js';

/** transformers' IMAGENET_STANDARD_MEAN / _STD: ViTImageProcessor's defaults. */
export const IMAGENET_STANDARD_MEAN = [0.5, 0.5, 0.5] as const;
export const IMAGENET_STANDARD_STD = [0.5, 0.5, 0.5] as const;
/** transformers' IMAGENET_DEFAULT_MEAN / _STD: what DINO's config sets. */
export const IMAGENET_DEFAULT_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_DEFAULT_STD = [0.229, 0.224, 0.225] as const;

/** `preprocessor_config.json`, keys verbatim. Missing keys take transformers' defaults. */
export interface ViTImageProcessorConfig {
  do_resize?: boolean;
  /** `{height, width}`, or a bare number for a square (old ViTFeatureExtractor configs). */
  size?: number | { height: number; width: number };
  /** A `PIL.Image.Resampling` number: 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming. */
  resample?: number;
  do_rescale?: boolean;
  rescale_factor?: number;
  do_normalize?: boolean;
  image_mean?: number | number[];
  image_std?: number | number[];
  [key: string]: unknown;
}

const reader = processorConfigReader('ViTImageProcessor');
// annotated, so that the compiler treats a call as the end of the path
const fail: ProcessorConfigReader['fail'] = reader.fail;
const { positiveInt, bool, triple } = reader;

/** [height, width] from `size`: {height, width} or a number for a square (default 224×224). */
function sizeOf(size: ViTImageProcessorConfig['size']): [number, number] {
  if (size === undefined) return [224, 224];
  if (typeof size === 'number') return [positiveInt('size', size), positiveInt('size', size)];
  if (size !== null && typeof size === 'object' && 'height' in size && 'width' in size)
    return [positiveInt('size.height', size.height), positiveInt('size.width', size.width)];
  fail('size', '{"height": H, "width": W} or a number', size);
}

export class ViTImageProcessor {
  readonly doResize: boolean;
  readonly height: number;
  readonly width: number;
  readonly resample: number;
  readonly doRescale: boolean;
  readonly rescaleFactor: number;
  readonly doNormalize: boolean;
  readonly imageMean: readonly [number, number, number];
  readonly imageStd: readonly [number, number, number];

  constructor(readonly config: ViTImageProcessorConfig = {}) {
    this.doResize = bool('do_resize', config.do_resize, true);
    [this.height, this.width] = sizeOf(config.size);
    this.resample = config.resample ?? 2;
    if (PIL_RESAMPLE[this.resample] === undefined) {
      const allowed = '1 (lanczos), 2 (bilinear), 3 (bicubic), 4 (box) or 5 (hamming)';
      fail('resample', allowed, config.resample);
    }
    this.doRescale = bool('do_rescale', config.do_rescale, true);
    this.rescaleFactor = config.rescale_factor ?? 1 / 255;
    if (typeof this.rescaleFactor !== 'number' || !(this.rescaleFactor > 0)) {
      fail('rescale_factor', 'a positive number', config.rescale_factor);
    }
    this.doNormalize = bool('do_normalize', config.do_normalize, true);
    this.imageMean = triple('image_mean', config.image_mean, IMAGENET_STANDARD_MEAN);
    this.imageStd = triple('image_std', config.image_std, IMAGENET_STANDARD_STD);
    if (this.imageStd.some((s) => s === 0)) fail('image_std', 'non-zero values', config.image_std);
  }

  /** Reads `preprocessor_config.json` from a model folder (facebook/dino-vits16). */
  static fromPretrained(folder: string): ViTImageProcessor {
    return new ViTImageProcessor(readConfig(folder, 'preprocessor_config.json'));
  }

  /** The uint8 stage: Pillow's resize to exactly width × height (no aspect keeping, no crop). */
  resize(image: RgbImage): RgbImage {
    checkImage(image);
    if (!this.doResize) return image;
    return resizeImage(image, this.width, this.height, PIL_RESAMPLE[this.resample]!);
  }

  /** (B, 3, H, W) float32 pixel values, H×W = size (224×224 for DINO ViT-S/16). */
  preprocess(images: readonly RgbImage[]): Tensor {
    if (images.length === 0) throw new RangeError('Expected at least one image to preprocess');
    const resized = images.map((img) => this.resize(img));
    return pixelValues(resized, this, 'do_resize');
  }
}
