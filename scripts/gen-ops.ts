// Generates src/engine/ops.generated.ts: one typed wrapper per ATen operator p3s uses, from the
// schemas the linked libtorch registers. Run `npm run gen:ops` after adding an operator here.
import { writeFileSync } from 'node:fs';
import { native, type ArgumentInfo, type SchemaInfo } from '../src/engine/native.js';

// [TypeScript name, ATen name, overload]
const OPS: [string, string, string][] = [
  // arithmetic (broadcasting)
  ['add', 'aten::add', 'Tensor'],
  ['addScalar', 'aten::add', 'Scalar'],
  ['sub', 'aten::sub', 'Tensor'],
  ['subScalar', 'aten::sub', 'Scalar'],
  ['rsubScalar', 'aten::rsub', 'Scalar'],
  ['mul', 'aten::mul', 'Tensor'],
  ['mulScalar', 'aten::mul', 'Scalar'],
  ['div', 'aten::div', 'Tensor'],
  ['divScalar', 'aten::div', 'Scalar'],
  ['powScalar', 'aten::pow', 'Tensor_Scalar'],
  ['pow', 'aten::pow', 'Tensor_Tensor'],
  ['neg', 'aten::neg', ''],
  ['exp', 'aten::exp', ''],
  ['log', 'aten::log', ''],
  ['sqrt', 'aten::sqrt', ''],
  ['rsqrt', 'aten::rsqrt', ''],
  ['abs', 'aten::abs', ''],
  ['sin', 'aten::sin', ''],
  ['cos', 'aten::cos', ''],
  ['tanh', 'aten::tanh', ''],
  ['sigmoid', 'aten::sigmoid', ''],
  ['relu', 'aten::relu', ''],
  ['silu', 'aten::silu', ''],
  ['gelu', 'aten::gelu', ''],
  ['floor', 'aten::floor', ''],
  ['round', 'aten::round', ''],
  ['reciprocal', 'aten::reciprocal', ''],
  ['maximum', 'aten::maximum', ''],
  ['minimum', 'aten::minimum', ''],
  ['clamp', 'aten::clamp', ''],
  ['where', 'aten::where', 'self'],
  ['lerp', 'aten::lerp', 'Scalar'],
  // linear algebra and neural-network layers
  ['matmul', 'aten::matmul', ''],
  ['mm', 'aten::mm', ''],
  ['bmm', 'aten::bmm', ''],
  ['baddbmm', 'aten::baddbmm', ''],
  ['linear', 'aten::linear', ''],
  ['conv2d', 'aten::conv2d', ''],
  ['convTranspose2d', 'aten::conv_transpose2d', 'input'],
  ['groupNorm', 'aten::group_norm', ''],
  ['layerNorm', 'aten::layer_norm', ''],
  ['softmax', 'aten::softmax', 'int'],
  ['logSoftmax', 'aten::log_softmax', 'int'],
  ['embedding', 'aten::embedding', ''],
  ['dropout', 'aten::dropout', ''],
  ['avgPool2d', 'aten::avg_pool2d', ''],
  ['maxPool2d', 'aten::max_pool2d', ''],
  ['upsampleNearest2d', 'aten::upsample_nearest2d', 'vec'],
  ['upsampleBilinear2d', 'aten::upsample_bilinear2d', 'vec'],
  ['upsampleBicubic2d', 'aten::upsample_bicubic2d', 'vec'],
  ['constantPadNd', 'aten::constant_pad_nd', ''],
  ['mseLoss', 'aten::mse_loss', ''],
  ['crossEntropyLoss', 'aten::cross_entropy_loss', ''],
  ['cosineSimilarity', 'aten::cosine_similarity', ''],
  ['vectorNorm', 'aten::linalg_vector_norm', ''],
  // shapes and views
  ['cat', 'aten::cat', ''],
  ['stack', 'aten::stack', ''],
  ['chunk', 'aten::chunk', ''],
  ['split', 'aten::split', 'Tensor'],
  ['splitWithSizes', 'aten::split_with_sizes', ''],
  ['view', 'aten::view', ''],
  // the same bytes read as another dtype of the same size (bit manipulation)
  ['viewDtype', 'aten::view', 'dtype'],
  ['reshape', 'aten::reshape', ''],
  ['permute', 'aten::permute', ''],
  ['transpose', 'aten::transpose', 'int'],
  ['contiguous', 'aten::contiguous', ''],
  ['slice', 'aten::slice', 'Tensor'],
  ['select', 'aten::select', 'int'],
  ['narrow', 'aten::narrow', ''],
  ['index', 'aten::index', 'Tensor'],
  ['indexSelect', 'aten::index_select', ''],
  ['gather', 'aten::gather', ''],
  ['unsqueeze', 'aten::unsqueeze', ''],
  ['squeezeDim', 'aten::squeeze', 'dim'],
  ['squeeze', 'aten::squeeze', ''],
  ['flatten', 'aten::flatten', 'using_ints'],
  ['expand', 'aten::expand', ''],
  ['repeat', 'aten::repeat', ''],
  ['flip', 'aten::flip', ''],
  ['roll', 'aten::roll', ''],
  ['tril', 'aten::tril', ''],
  ['triu', 'aten::triu', ''],
  // reductions and comparisons
  ['sumAll', 'aten::sum', ''],
  ['sum', 'aten::sum', 'dim_IntList'],
  ['meanAll', 'aten::mean', ''],
  ['mean', 'aten::mean', 'dim'],
  ['variance', 'aten::var', 'correction'],
  ['std', 'aten::std', 'correction'],
  ['amax', 'aten::amax', ''],
  ['amin', 'aten::amin', ''],
  ['maxDim', 'aten::max', 'dim'],
  ['minDim', 'aten::min', 'dim'],
  ['maxAll', 'aten::max', ''],
  ['minAll', 'aten::min', ''],
  ['argmax', 'aten::argmax', ''],
  ['argmin', 'aten::argmin', ''],
  ['topk', 'aten::topk', ''],
  ['sort', 'aten::sort', ''],
  ['cumsum', 'aten::cumsum', ''],
  ['eq', 'aten::eq', 'Tensor'],
  ['eqScalar', 'aten::eq', 'Scalar'],
  ['ne', 'aten::ne', 'Tensor'],
  ['gt', 'aten::gt', 'Tensor'],
  ['gtScalar', 'aten::gt', 'Scalar'],
  ['lt', 'aten::lt', 'Tensor'],
  ['ltScalar', 'aten::lt', 'Scalar'],
  ['ge', 'aten::ge', 'Tensor'],
  ['geScalar', 'aten::ge', 'Scalar'],
  ['le', 'aten::le', 'Tensor'],
  ['leScalar', 'aten::le', 'Scalar'],
  ['logicalNot', 'aten::logical_not', ''],
  ['logicalAnd', 'aten::logical_and', ''],
  ['bitwiseAndScalar', 'aten::bitwise_and', 'Scalar'],
  ['isnan', 'aten::isnan', ''],
  ['isfinite', 'aten::isfinite', ''],
  ['all', 'aten::all', ''],
  ['any', 'aten::any', ''],
  ['maskedFill', 'aten::masked_fill', 'Scalar'],
  ['nonzero', 'aten::nonzero', ''],
  ['allclose', 'aten::allclose', ''],
  ['equal', 'aten::equal', ''],
  // creation, copies, conversion
  ['zeros', 'aten::zeros', ''],
  ['ones', 'aten::ones', ''],
  ['full', 'aten::full', ''],
  ['empty', 'aten::empty', 'memory_format'],
  ['arange', 'aten::arange', 'start_step'],
  ['linspace', 'aten::linspace', ''],
  ['zerosLike', 'aten::zeros_like', ''],
  ['onesLike', 'aten::ones_like', ''],
  ['fullLike', 'aten::full_like', ''],
  ['randn', 'aten::randn', 'generator'],
  ['rand', 'aten::rand', 'generator'],
  ['randint', 'aten::randint', 'low_generator'],
  ['randperm', 'aten::randperm', 'generator'],
  ['normal', 'aten::normal', 'float_float'],
  ['bernoulli', 'aten::bernoulli', 'p'],
  ['toDtype', 'aten::to', 'dtype'],
  ['toDevice', 'aten::to', 'device'],
  ['clone', 'aten::clone', ''],
  ['detach', 'aten::detach', ''],
  ['item', 'aten::item', ''],
  // in place (optimizers, initialisation)
  ['copy_', 'aten::copy_', ''],
  ['fill_', 'aten::fill_', 'Scalar'],
  ['zero_', 'aten::zero_', ''],
  ['add_', 'aten::add_', 'Tensor'],
  ['addScalar_', 'aten::add_', 'Scalar'],
  ['mul_', 'aten::mul_', 'Tensor'],
  ['mulScalar_', 'aten::mul_', 'Scalar'],
  ['divScalar_', 'aten::div_', 'Scalar'],
  ['addcmul_', 'aten::addcmul_', ''],
  ['addcdiv_', 'aten::addcdiv_', ''],
  ['lerp_', 'aten::lerp_', 'Scalar'],
  ['clampMin_', 'aten::clamp_min_', ''],
  ['normal_', 'aten::normal_', ''],
  ['uniform_', 'aten::uniform_', ''],
];

function baseType(type: string): { ts: string; convert?: (expr: string) => string } {
  switch (type) {
    case 'Tensor':
      return { ts: 'Tensor' };
    case 'int':
    case 'SymInt':
    case 'float':
    case 'Layout':
    case 'MemoryFormat':
      return { ts: 'number' };
    case 'bool':
      return { ts: 'boolean' };
    case 'number':
      return { ts: 'Scalar' };
    case 'str':
    case 'Device':
      return { ts: 'string' };
    case 'ScalarType':
      return { ts: 'DType', convert: (e) => `dtypeCode(${e})` };
    case 'Generator':
      return { ts: 'Generator' };
  }
  throw new Error(`gen-ops: unsupported schema type ${type}`);
}

function tsType(arg: ArgumentInfo): {
  ts: string;
  convert?: (expr: string) => string;
  omittable: boolean;
} {
  let type = arg.type;
  let optional = false;
  const opt = /^Optional\[(.*)\]$/.exec(type);
  if (opt) {
    optional = true;
    type = opt[1]!;
  }
  let out: { ts: string; convert?: (expr: string) => string };
  const list = /^List\[(.*)\]$/.exec(type);
  if (list) {
    const inner = list[1]!;
    if (inner === 'Optional[Tensor]') out = { ts: '(Tensor | null)[]' };
    else {
      const b = baseType(inner);
      out = { ts: arg.n !== undefined ? `${b.ts} | ${b.ts}[]` : `${b.ts}[]` };
    }
  } else {
    out = baseType(type);
  }
  const convert = out.convert;
  const omittable = optional || arg.default !== undefined;
  return {
    ts: optional ? `${out.ts} | null` : out.ts,
    convert: convert && (optional ? (e) => `${e} == null ? ${e} : ${convert(e)}` : convert),
    omittable,
  };
}

function returnType(schema: SchemaInfo): string {
  const map = (t: string): string =>
    t === 'Tensor'
      ? 'Tensor'
      : t === 'List[Tensor]'
        ? 'Tensor[]'
        : t === 'bool'
          ? 'boolean'
          : t === 'int' || t === 'float' || t === 'number'
            ? 'number'
            : (() => {
                throw new Error(`gen-ops: unsupported return type ${t} in ${schema.text}`);
              })();
  if (schema.returns.length === 0) return 'void';
  if (schema.returns.length === 1) return map(schema.returns[0]!.type);
  return `[${schema.returns.map((r) => map(r.type)).join(', ')}]`;
}

const RESERVED = new Set(['self', 'default', 'function', 'in', 'var', 'new', 'delete']);

function emit(tsName: string, schema: SchemaInfo): string {
  const args = schema.arguments.map((a) => ({ ...a, ...tsType(a) }));
  // A parameter may be written optional (`?`) only when every later one is omittable too.
  let trailingOmittable = true;
  const optionalFlags: boolean[] = new Array(args.length).fill(false);
  for (let i = args.length - 1; i >= 0; i--) {
    trailingOmittable = trailingOmittable && args[i]!.omittable;
    optionalFlags[i] = trailingOmittable;
  }
  const names = args.map((a) =>
    RESERVED.has(a.name)
      ? `${a.name}_`
      : a.name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
  );
  const params = args.map((a, i) => {
    const name = names[i]!;
    if (optionalFlags[i]) return `${name}?: ${a.ts}`;
    return a.omittable ? `${name}: ${a.ts} | undefined` : `${name}: ${a.ts}`;
  });
  const values = args.map((a, i) => {
    const name = names[i]!;
    if (!a.convert) return name;
    return a.omittable ? `${name} === undefined ? undefined : ${a.convert(name)}` : a.convert(name);
  });
  const id = `op_${tsName}`;
  const resolve = `(${id} ??= findOp('${schema.name}', '${schema.overload}'))`;
  const inplace =
    schema.returns.length === 1 &&
    schema.returns[0]!.mutable &&
    args[0]?.mutable &&
    args[0].type === 'Tensor';
  const body = inplace
    ? `return callInplace(${resolve}, ${names[0]}, [${values.join(', ')}]);`
    : `return callOp(${resolve}, [${values.join(', ')}]) as ${returnType(schema)};`;
  return `let ${id}: number | undefined;
/** \`${schema.text}\` */
export function ${tsName}(${params.join(', ')}): ${inplace ? 'Tensor' : returnType(schema)} {
  ${body}
}
`;
}

let out = `// Generated by scripts/gen-ops.ts from the schemas of libtorch ${native.libtorchVersion()}. Do not edit.
// Arguments are in schema order; undefined takes the schema default.
/* eslint-disable */
import { callOp, callInplace, findOp } from './ops.js';
import type { Tensor } from './tensor.js';
import type { Generator } from './random.js';
import { dtypeCode, type DType } from './dtype.js';

export type Scalar = number | boolean;

`;
for (const [tsName, name, overload] of OPS) {
  out += emit(tsName, native.opSchema(native.findOp(name, overload))) + '\n';
}
writeFileSync('src/engine/ops.generated.ts', out);
console.log(`wrote src/engine/ops.generated.ts (${OPS.length} operators)`);
