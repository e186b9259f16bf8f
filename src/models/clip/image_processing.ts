// CLIP's image preprocessing as transformers 4.26's CLIPImageProcessor computes it: convert to
// RGB, resize the shortest edge with Pillow's bicubic filter, center crop, rescale by 1/255 and
// normalise with the OpenAI CLIP mean and std. The resize is Pillow-exact (src/io/image.ts), so
// the uint8 crops equal the Python pipeline's and the pixel values agree to float32 rounding.
import { Tensor } from '../../engine/tensor.js';
import {
  PIL_RESAMPLE,
  checkImage,
  resizeImage,
  solidImage,
  cropImage,
  pasteImage,
  type RgbImage,
} from '../../io/image.js';
import { readConfig } from '../loading.js';
import { pixelValues } from '../pixel_values.js';
import { processorConfigReader, type ProcessorConfigReader } from '../processor_config.js';

export const OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/** `preprocessor_config.json`, keys verbatim. Missing keys take transformers' defaults. */
export interface CLIPImageProcessorConfig {
  do_resize?: boolean;
  /** `{shortest_edge}`, or a bare number meaning the same (old feature-extractor configs). */
  size?: number | { shortest_edge: number };
  /** A `PIL.Image.Resampling` number: 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming. */
  resample?: number;
  do_center_crop?: boolean;
  /** `{height, width}`, or a bare number for a square. */
  crop_size?: number | { height: number; width: number };
  do_rescale?: boolean;
  rescale_factor?: number;
  do_normalize?: boolean;
  image_mean?: number | number[];
  image_std?: number | number[];
  /** Accepted and recorded; RgbImage is always RGB already (readImage drops alpha as PIL does). */
  do_convert_rgb?: boolean;
  [key: string]: unknown;
}

const reader = processorConfigReader('CLIPImageProcessor');
// annotated, so that the compiler treats a call as the end of the path
const fail: ProcessorConfigReader['fail'] = reader.fail;
const { positiveInt, bool, triple } = reader;

export class CLIPImageProcessor {
  readonly doResize: boolean;
  readonly shortestEdge: number;
  readonly resample: number;
  readonly doCenterCrop: boolean;
  readonly cropHeight: number;
  readonly cropWidth: number;
  readonly doRescale: boolean;
  readonly rescaleFactor: number;
  readonly doNormalize: boolean;
  readonly imageMean: readonly [number, number, number];
  readonly imageStd: readonly [number, number, number];
  readonly doConvertRgb: boolean;

  constructor(readonly config: CLIPImageProcessorConfig = {}) {
    this.doResize = bool('do_resize', config.do_resize, true);
    const size = config.size ?? { shortest_edge: 224 };
    if (typeof size === 'number') {
      this.shortestEdge = positiveInt('size', size);
    } else if (size !== null && typeof size === 'object' && 'shortest_edge' in size) {
      this.shortestEdge = positiveInt('size.shortest_edge', size.shortest_edge);
    } else {
      // transformers 4.26 refuses {height, width} here too.
      fail('size', '{"shortest_edge": N} or a number', size);
    }
    this.resample = config.resample ?? 3;
    if (PIL_RESAMPLE[this.resample] === undefined) {
      fail(
        'resample',
        '1 (lanczos), 2 (bilinear), 3 (bicubic), 4 (box) or 5 (hamming)',
        config.resample,
      );
    }
    this.doCenterCrop = bool('do_center_crop', config.do_center_crop, true);
    const crop = config.crop_size ?? { height: 224, width: 224 };
    if (typeof crop === 'number') {
      this.cropHeight = this.cropWidth = positiveInt('crop_size', crop);
    } else if (crop !== null && typeof crop === 'object' && 'height' in crop && 'width' in crop) {
      this.cropHeight = positiveInt('crop_size.height', crop.height);
      this.cropWidth = positiveInt('crop_size.width', crop.width);
    } else {
      fail('crop_size', '{"height": H, "width": W} or a number', crop);
    }
    this.doRescale = bool('do_rescale', config.do_rescale, true);
    this.rescaleFactor = config.rescale_factor ?? 1 / 255;
    if (typeof this.rescaleFactor !== 'number' || !(this.rescaleFactor > 0)) {
      fail('rescale_factor', 'a positive number', config.rescale_factor);
    }
    this.doNormalize = bool('do_normalize', config.do_normalize, true);
    this.imageMean = triple('image_mean', config.image_mean, OPENAI_CLIP_MEAN);
    this.imageStd = triple('image_std', config.image_std, OPENAI_CLIP_STD);
    if (this.imageStd.some((s) => s === 0)) fail('image_std', 'non-zero values', config.image_std);
    this.doConvertRgb = bool('do_convert_rgb', config.do_convert_rgb, true);
  }

  /** Reads `preprocessor_config.json` from a model folder (e.g. SD's `feature_extractor/`). */
  static fromPretrained(folder: string): CLIPImageProcessor {
    return new CLIPImageProcessor(readConfig(folder, 'preprocessor_config.json'));
  }

  /**
   * (height, width) after the shortest-edge resize, as transformers' `get_resize_output_image_size`
   * with default_to_square=False: short side = size, long side = int(size · long / short).
   */
  resizedSize(height: number, width: number): [number, number] {
    const s = this.shortestEdge;
    if (width <= height) return [Math.trunc((s * height) / width), s];
    return [s, Math.trunc((s * width) / height)];
  }

  /**
   * The uint8 stage: resize (Pillow-exact) then center crop. The crop's top-left corner is
   * ((h - crop_h) // 2, (w - crop_w) // 2); an image smaller than the crop is centred on black,
   * as transformers pads with zeros.
   */
  resizeAndCrop(image: RgbImage): RgbImage {
    checkImage(image);
    let img = image;
    if (this.doResize) {
      const [h, w] = this.resizedSize(img.height, img.width);
      img = resizeImage(img, w, h, PIL_RESAMPLE[this.resample]!);
    }
    if (this.doCenterCrop) img = centerCrop(img, this.cropHeight, this.cropWidth);
    return img;
  }

  /** (B, 3, H, W) float32 pixel values, H×W the crop size (224×224 for CLIP-L). */
  preprocess(images: readonly RgbImage[]): Tensor {
    if (images.length === 0) throw new RangeError('Expected at least one image to preprocess');
    const crops = images.map((img) => this.resizeAndCrop(img));
    return pixelValues(crops, this, 'do_resize and do_center_crop');
  }
}

/** transformers' center_crop: top = (h - crop_h) // 2, left = (w - crop_w) // 2, zero padding. */
export function centerCrop(img: RgbImage, cropHeight: number, cropWidth: number): RgbImage {
  if (img.height >= cropHeight && img.width >= cropWidth) {
    const top = Math.floor((img.height - cropHeight) / 2);
    const left = Math.floor((img.width - cropWidth) / 2);
    return cropImage(img, left, top, cropWidth, cropHeight);
  }
  // Pad with zeros to at least the crop size, image centred, then crop the middle.
  const padH = Math.max(cropHeight, img.height);
  const padW = Math.max(cropWidth, img.width);
  const padded = solidImage(padW, padH, [0, 0, 0]);
  pasteImage(padded, img, Math.floor((padW - img.width) / 2), Math.floor((padH - img.height) / 2));
  return centerCrop(padded, cropHeight, cropWidth);
}
