// Runs a TFJS graph model with TensorFlow.js's pure-JS CPU backend: the reference that
// `make models` compares its own TFJS->ONNX conversions with (see models/tfjs_reference.py).
// usage: node run.js MODEL_JSON INPUT_F32 N,H,W,C OUT_DIR OUTPUT_NODE...
// INPUT_F32 holds little-endian float32 values; output i is written to OUT_DIR/i.f32.
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const tfconv = require('@tensorflow/tfjs-converter');

async function main() {
  const [modelJson, inputFile, shapeText, outDir, ...outputs] = process.argv.slice(2);
  await tf.setBackend('cpu');
  const model = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
  const specs = [];
  const shards = [];
  for (const group of model.weightsManifest) {
    specs.push(...group.weights);
    for (const shard of group.paths) shards.push(fs.readFileSync(path.join(path.dirname(modelJson), shard)));
  }
  const weights = Buffer.concat(shards);
  const handler = {
    load: async () => ({
      modelTopology: model.modelTopology,
      weightSpecs: specs,
      weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
      format: model.format,
      generatedBy: model.generatedBy,
      convertedBy: model.convertedBy,
      signature: model.signature,
    }),
  };
  const graph = await tfconv.loadGraphModel(handler);
  const raw = fs.readFileSync(inputFile);
  const values = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const input = tf.tensor(values, shapeText.split(',').map(Number), 'float32');
  const results = [].concat(graph.execute(input, outputs));
  for (let i = 0; i < results.length; i++) {
    const data = await results[i].data();
    fs.writeFileSync(path.join(outDir, `${i}.f32`), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
