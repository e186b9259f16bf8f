#!/usr/bin/python3
"""Reference outputs for the mask post-processing of Eq. (2) (src/p3s/mask/).

Regenerate with the Debian python (numpy, scipy, scikit-image installed from apt):

    /usr/bin/python3 tools/make_mask_fixtures.py

Writes test/fixtures/mask/reference.json. Everything is deterministic (fixed numpy seeds).
Float inputs are float32-representable values stored as float64, and the references are
computed in float64 so that they measure the algorithm, not a storage dtype.

Binary grids and label maps are stored as strings of one character per cell, row-major
(labels as base-36 digits), which keeps the file small and readable.
"""

import json
import os
import sys

import numpy as np
import scipy
import scipy.ndimage as ndi
import skimage
from skimage.filters import threshold_otsu
from skimage.morphology import disk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'mask', 'reference.json')
DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz'


def f32(a):
    """float32-representable values held as float64."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def floats(a):
    # repr of a Python float round-trips exactly through JSON.parse.
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def bits(a):
    return ''.join('1' if v else '0' for v in np.asarray(a).ravel())


def labels_str(a):
    a = np.asarray(a).ravel()
    assert a.max(initial=0) < len(DIGITS), 'too many labels for the base-36 encoding'
    return ''.join(DIGITS[int(v)] for v in a)


def two_blobs(h, w, centres, radius):
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.zeros((h, w))
    for cy, cx in centres:
        m = np.maximum(m, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2)))
    return f32(m)


def gaussian_cases():
    rng = np.random.default_rng(0)
    maps = {
        'rand16': f32(rng.random((16, 16))),
        'rand7x12': f32(rng.random((7, 12))),
        'tiny3x5': f32(rng.random((3, 5))),
        'row1x6': f32(rng.random((1, 6))),
        'blobs16': two_blobs(16, 16, [(4, 4), (11, 12)], 2.0),
    }
    plan = [
        ('rand16', [0.5, 1.0, 2.0], ['reflect', 'nearest', 'constant', 'mirror'], 4.0),
        ('rand7x12', [1.0, 2.0], ['reflect', 'nearest', 'constant', 'mirror'], 4.0),
        # radius 8 on a 3-row grid: the boundary extension has to wrap several times.
        ('tiny3x5', [2.0], ['reflect', 'nearest', 'constant', 'mirror'], 4.0),
        ('row1x6', [1.0], ['reflect', 'nearest', 'constant', 'mirror'], 4.0),
        ('blobs16', [1.0], ['reflect'], 4.0),
        ('rand16', [1.3], ['reflect'], 2.0),
    ]
    cases = []
    for name, sigmas, modes, truncate in plan:
        m = maps[name]
        for sigma in sigmas:
            for mode in modes:
                out = ndi.gaussian_filter(m, sigma, mode=mode, cval=0.0, truncate=truncate)
                cases.append(
                    {
                        'input': name,
                        'sigma': sigma,
                        'mode': mode,
                        'truncate': truncate,
                        'output': floats(out),
                    }
                )
    inputs = {k: {'h': v.shape[0], 'w': v.shape[1], 'data': floats(v)} for k, v in maps.items()}
    return inputs, cases


def otsu_cases(gauss_inputs):
    rng = np.random.default_rng(1)
    blobs = np.array(gauss_inputs['blobs16']['data']).reshape(16, 16)
    smoothed = ndi.gaussian_filter(blobs, 1.0, mode='reflect')
    bimodal = np.concatenate([rng.normal(0.2, 0.05, 300), rng.normal(0.7, 0.1, 200)])
    values = {
        'rand16': np.array(gauss_inputs['rand16']['data']),
        'rand7x12': np.array(gauss_inputs['rand7x12']['data']),
        'bimodal500': f32(bimodal),
        'blobs16_smoothed': smoothed.ravel(),
        'two_values': np.array([0.0, 0.0, 1.0, 1.0, 1.0]),
        # values sitting exactly on bin edges (histogram edge handling)
        'on_edges': np.linspace(0.0, 1.0, 257),
        'integers_as_float': np.array([0, 1, 1, 2, 3, 3, 3, 7, 8, 9, 9, 10], dtype=np.float64),
        'negative_cosines': f32(rng.uniform(-0.4, 0.9, 200)),
        'all_equal': np.full(20, 0.3),
    }
    cases = []
    for name, v in values.items():
        for nbins in ([256, 16, 2] if name in ('rand16', 'bimodal500') else [256]):
            t = threshold_otsu(v, nbins=nbins)
            cases.append({'name': name, 'nbins': nbins, 'values': floats(v), 'threshold': float(t)})
    return cases


def histogram_cases():
    """numpy.histogram counts where the first-guess bin index is off by one ULP-sized step.

    Values on and one ULP either side of every bin edge, over ranges where
    int((v - min) * nbins / (max - min)) disagrees with the returned edges, so numpy's
    decrement / increment corrections decide the bin.
    """
    cases = []
    for name, lo, hi in [
        ('ulp_edges_a', 0.6080271295805606, 6.766893518310661),
        ('ulp_edges_b', 0.0011996835868286482, 0.7074955673371773),
    ]:
        edges = np.linspace(lo, hi, 257)
        v = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
        v = v[(v >= lo) & (v <= hi)]
        counts, bin_edges = np.histogram(v, bins=256)
        cases.append(
            {
                'name': name,
                'nbins': 256,
                'values': floats(v),
                'counts': [int(c) for c in counts],
                'edges': floats(bin_edges),
            }
        )
    counts, bin_edges = np.histogram(np.full(5, 2.5), bins=4)
    cases.append(
        {
            'name': 'all_equal',
            'nbins': 4,
            'values': [2.5] * 5,
            'counts': [int(c) for c in counts],
            'edges': floats(bin_edges),
        }
    )
    return cases


def label_cases():
    rng = np.random.default_rng(2)
    grids = {
        'rand16': rng.random((16, 16)) < 0.45,
        'rand9x13': rng.random((9, 13)) < 0.5,
        # a U and a spiral: arms that only meet late in the raster scan
        'u_shape': np.array(
            [
                [1, 0, 0, 0, 1, 0, 1],
                [1, 0, 1, 0, 1, 0, 1],
                [1, 0, 1, 0, 1, 0, 0],
                [1, 1, 1, 0, 1, 1, 1],
                [0, 0, 0, 1, 0, 0, 0],
            ],
            dtype=bool,
        ),
        'diagonal': np.eye(6, dtype=bool) | np.fliplr(np.eye(6, dtype=bool)),
        'empty': np.zeros((4, 5), dtype=bool),
        'full': np.ones((3, 4), dtype=bool),
    }
    structures = {4: ndi.generate_binary_structure(2, 1), 8: ndi.generate_binary_structure(2, 2)}
    cases = []
    for name, g in grids.items():
        for conn, s in structures.items():
            lab, n = ndi.label(g, structure=s)
            cases.append(
                {
                    'name': name,
                    'h': g.shape[0],
                    'w': g.shape[1],
                    'connectivity': conn,
                    'binary': bits(g),
                    'labels': labels_str(lab),
                    'count': int(n),
                }
            )
    # scipy's default structure is 4-connectivity: record it so the test can check the default.
    lab, n = ndi.label(grids['rand16'])
    cases.append(
        {
            'name': 'rand16_default',
            'h': 16,
            'w': 16,
            'connectivity': None,
            'binary': bits(grids['rand16']),
            'labels': labels_str(lab),
            'count': int(n),
        }
    )
    return cases


def morphology_cases():
    rng = np.random.default_rng(3)
    grids = {
        'sparse20x17': rng.random((20, 17)) < 0.08,
        'blocky12x12': np.kron(rng.random((4, 4)) < 0.5, np.ones((3, 3), dtype=bool)),
    }
    cases = []
    for name, g in grids.items():
        for r in [1, 2, 3]:
            s = disk(r).astype(bool)
            cases.append(
                {
                    'name': name,
                    'h': g.shape[0],
                    'w': g.shape[1],
                    'radius': r,
                    'input': bits(g),
                    # border_value=0 (the scipy default): outside the grid counts as background.
                    'dilation': bits(ndi.binary_dilation(g, structure=s)),
                    'erosion': bits(ndi.binary_erosion(g, structure=s)),
                }
            )
    return cases


def resize_cases():
    """Bilinear with align_corners=False semantics.

    scipy.ndimage.zoom with grid_mode=True, order=1 and mode='nearest' samples at
    (dst + 0.5) * in / out - 0.5 and clamps at the edges, which is exactly what
    torch.nn.functional.interpolate(mode='bilinear', align_corners=False) does.
    """
    rng = np.random.default_rng(4)
    plan = [
        ('known2x2', np.array([[1.0, 2.0], [3.0, 4.0]]), (4, 4)),
        ('rand4x5', f32(rng.random((4, 5))), (12, 15)),
        ('rand3x3', f32(rng.random((3, 3))), (7, 7)),
        ('rand16', f32(rng.random((16, 16))), (40, 56)),
    ]
    cases = []
    for name, m, (oh, ow) in plan:
        out = ndi.zoom(
            m, (oh / m.shape[0], ow / m.shape[1]), order=1, grid_mode=True, mode='nearest'
        )
        assert out.shape == (oh, ow), (name, out.shape)
        cases.append(
            {
                'name': name,
                'h': m.shape[0],
                'w': m.shape[1],
                'outH': oh,
                'outW': ow,
                'input': floats(m),
                'output': floats(out),
            }
        )
    return cases


def main():
    gauss_inputs, gauss_cases = gaussian_cases()
    ref = {
        'generator': 'tools/make_mask_fixtures.py',
        'versions': {
            'python': sys.version.split()[0],
            'numpy': np.__version__,
            'scipy': scipy.__version__,
            'skimage': skimage.__version__,
        },
        'gaussian': {'inputs': gauss_inputs, 'cases': gauss_cases},
        'otsu': otsu_cases(gauss_inputs),
        'histogram': histogram_cases(),
        'label': label_cases(),
        'morphology': morphology_cases(),
        'resize': resize_cases(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as f:
        json.dump(ref, f, separators=(',', ':'))
        f.write('\n')
    print(f'wrote {os.path.relpath(OUT, ROOT)} ({os.path.getsize(OUT) / 1024:.1f} KiB)')


if __name__ == '__main__':
    main()
