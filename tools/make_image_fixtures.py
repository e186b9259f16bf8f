#!/usr/bin/python3
"""A CMYK JPEG and the pixels Pillow decodes from it (src/io/image.ts, readImage).

Regenerate with the Debian python (python3-pil installed from apt):

    /usr/bin/python3 tools/make_image_fixtures.py

Writes test/fixtures/images/cmyk.jpg (saved by Pillow, so an Adobe CMYK JPEG with the inverted
samples Photoshop writes) and test/fixtures/images/cmyk.json: Pillow's CMYK samples after
decoding and its `convert("RGB")` pixels, row-major, as readImage is expected to give them.
Deterministic: the image is drawn from formulas, no random numbers.
"""

import json
import os

import PIL
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'images')
WIDTH, HEIGHT = 32, 16


def drawn():
    """Smooth ramps of each ink, with black (K) rising by columns, so JPEG keeps them."""
    img = Image.new('CMYK', (WIDTH, HEIGHT))
    px = img.load()
    for y in range(HEIGHT):
        for x in range(WIDTH):
            px[x, y] = (x * 8, y * 16, (x + y) * 5, (x // 8) * 64)
    return img


def main():
    os.makedirs(OUT, exist_ok=True)
    jpeg = os.path.join(OUT, 'cmyk.jpg')
    drawn().save(jpeg, quality=95)
    decoded = Image.open(jpeg)
    assert decoded.mode == 'CMYK'
    cmyk = [v for p in decoded.getdata() for v in p]
    rgb = [v for p in decoded.convert('RGB').getdata() for v in p]
    record = {
        'source': f'Pillow {PIL.__version__}: Image.open(cmyk.jpg) and .convert("RGB")',
        'width': WIDTH,
        'height': HEIGHT,
        'adobe': decoded.info.get('adobe') is not None,
        'cmyk': cmyk,
        'rgb': rgb,
    }
    with open(os.path.join(OUT, 'cmyk.json'), 'w') as f:
        json.dump(record, f, separators=(',', ':'))
        f.write('\n')


if __name__ == '__main__':
    main()
