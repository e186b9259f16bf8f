// Builds the page of `p3s serve` (apps/serve/page/) into build/page/: main.ts bundled by esbuild
// (ESM, minified, with a source map) and index.html and style.css copied next to it.
// Usage: node scripts/build-page.mjs [outDir]
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'apps', 'serve', 'page');
const out = resolve(process.argv[2] ?? join(root, 'build', 'page'));

const started = performance.now();
mkdirSync(out, { recursive: true });
const result = await build({
  entryPoints: [join(src, 'main.ts')],
  outfile: join(out, 'main.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
  absWorkingDir: root,
});
for (const name of ['index.html', 'style.css']) copyFileSync(join(src, name), join(out, name));

const written = [...Object.keys(result.metafile.outputs).map((f) => resolve(root, f))];
written.push(join(out, 'index.html'), join(out, 'style.css'));
const ms = Math.round(performance.now() - started);
for (const file of written)
  console.log(`${relative(process.cwd(), file)}  ${(statSync(file).size / 1024).toFixed(1)} kB`);
console.log(`page built in ${ms} ms`);
