// record.mjs -- dev-time tooling, run once; users of humanparse never need Node.
//
// Runs body-pix's own multi-person pose decoder (decodeMultiplePoses from the published
// @tensorflow-models/body-pix package, dist/multi_person/) on PoseNet maps, exactly as
// body_pix_model.ts does after its network: heatmapScores = tf.sigmoid(heatmaps), every
// map turned into a TensorBuffer3D, then decodeMultiplePoses(scores, offsets,
// displacementFwd, displacementBwd, outputStride, maxDetections, scoreThreshold, nmsRadius).
// record.py drives this script and packs the results into tests/fixtures/pretrained/.
//
// Setup (outside the repo, so no node_modules lands in it):
//   mkdir -p /tmp/posenetref && cp tools/posenet_reference/package.json /tmp/posenetref/
//   (cd /tmp/posenetref && npm install)
// Usage:
//   node record.mjs NODE_MODULES_DIR CASES.json MAPS.bin OUT.json
//     CASES.json: [{"h", "w", "offset", "stride", "max_poses", "score_threshold", "nms_radius"}, ...]
//     MAPS.bin  : raw float32 little-endian; case i's maps start at element "offset":
//                 (h, w, 17) heatmap logits, (h, w, 34) offsets, (h, w, 32) displacementFwd,
//                 (h, w, 32) displacementBwd, each C order (TF.js layout, channels last).
//   writes OUT.json: per case, a list of poses {"score", "keypoints": [[x, y, score] × 17]}.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const [nodeModules, casesJson, mapsBin, outJson] = process.argv.slice(2);
if (!outJson) {
  console.error('usage: node record.mjs NODE_MODULES_DIR CASES.json MAPS.bin OUT.json');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(nodeModules), 'noop.js'));
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const bodyPixDir = path.dirname(require.resolve('@tensorflow-models/body-pix/package.json'));
const { decodeMultiplePoses } = require(path.join(bodyPixDir, 'dist/multi_person/decode_multiple_poses.js'));

await tf.setBackend('cpu');
await tf.ready();

const cases = JSON.parse(fs.readFileSync(casesJson, 'utf8'));
const raw = fs.readFileSync(mapsBin);
const all = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
const results = [];
for (const c of cases) {
  let at = c.offset;
  const take = (channels) => {
    const size = c.h * c.w * channels;
    const t = tf.tensor3d(all.slice(at, at + size), [c.h, c.w, channels], 'float32');
    at += size;
    return t;
  };
  const heatmaps = take(17);
  const tensors = [tf.sigmoid(heatmaps), take(34), take(32), take(32)];
  const [scores, offsets, fwd, bwd] = await Promise.all(tensors.map((t) => t.buffer()));
  const poses = decodeMultiplePoses(scores, offsets, fwd, bwd, c.stride, c.max_poses, c.score_threshold, c.nms_radius);
  results.push(poses.map((p) => ({
    score: p.score,
    keypoints: p.keypoints.map((k) => [k.position.x, k.position.y, k.score]),
  })));
  tf.dispose([heatmaps, ...tensors]);
}
fs.writeFileSync(outJson, JSON.stringify(results));
console.log(`${cases.length} cases, ${results.reduce((n, r) => n + r.length, 0)} poses`);
