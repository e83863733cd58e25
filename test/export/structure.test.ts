import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportOnnx, decodeModel, int64Value, GraphBuilder, type ModelProto } from '../../src/export/index.js';
import { readOnnxMetadata, parseOnnxMetadata } from '../../src/onnx/index.js';
import { tempDir } from '../helpers.js';
import { savedModel } from './fixture.js';

/**
 * The exported file read back with stcnet's own schema (the python onnx package and its checker are
 * not installed): the structural rules of ONNX's checker that a writer can break, and the metadata.
 */

/** The rules: opset ≥ 17, unique names, inputs defined before use, declared outputs made, initializers well-formed. */
function checkGraph(model: ModelProto): void {
  const opset = model.opset_import.find((o) => (o.domain ?? '') === '');
  assert.ok(opset && int64Value(opset.version) >= 17, 'default-domain opset ≥ 17');
  assert.ok(int64Value(model.ir_version) >= 8, 'IR version of opset 17 or later');
  assert.equal(model.producer_name, 'stcnet');
  const g = model.graph;
  const defined = new Set<string>();
  const define = (name: string, what: string) => {
    assert.ok(name.length > 0, `${what} has an empty name`);
    assert.ok(!defined.has(name), `${what} "${name}" is defined twice`);
    defined.add(name);
  };
  for (const input of g.input) define(input.name, 'graph input');
  for (const tensor of g.initializer) {
    define(tensor.name, 'initializer');
    const elements = tensor.dims.map(int64Value).reduce((a, b) => a * b, 1);
    if (tensor.data_type === 1) assert.equal(tensor.raw_data?.length, elements * 4, `${tensor.name}: raw_data holds its ${elements} floats`);
    else if (tensor.data_type === 7) assert.equal(tensor.int64_data?.length, elements, `${tensor.name}: int64_data holds its ${elements} values`);
    else assert.fail(`${tensor.name}: unexpected data type ${tensor.data_type}`);
  }
  const nodeNames = new Set<string>();
  for (const node of g.node) {
    assert.ok(!nodeNames.has(node.name), `node name "${node.name}" is used twice`);
    nodeNames.add(node.name);
    assert.ok((node.domain ?? '') === '', `${node.name}: default domain`);
    for (const input of node.input) assert.ok(defined.has(input), `${node.name} (${node.op_type}) reads "${input}" before anything makes it`);
    for (const output of node.output) define(output, `output of ${node.name}`);
    const attributes = new Set<string>();
    for (const a of node.attribute) {
      assert.ok(!attributes.has(a.name), `${node.name}: attribute ${a.name} twice`);
      attributes.add(a.name);
      assert.ok(a.type > 0, `${node.name}: attribute ${a.name} has its type`);
    }
  }
  assert.ok(g.output.length > 0);
  for (const output of g.output) assert.ok(defined.has(output.name), `declared output "${output.name}" is made by a node`);
  // Every node contributes to the output (no dead ends left by the writer).
  const needed = new Set(g.output.map((o) => o.name));
  for (const node of [...g.node].reverse()) if (node.output.some((o) => needed.has(o))) for (const i of node.input) needed.add(i);
  for (const node of g.node) assert.ok(node.output.some((o) => needed.has(o)), `${node.name} feeds nothing`);
  for (const tensor of g.initializer) assert.ok(needed.has(tensor.name), `initializer ${tensor.name} is unused`);
}

test('the exported graph passes the structural checks; BatchNorm is folded away; the batch axis is symbolic', async () => {
  const dir = tempDir('stcnet-export-structure-');
  const saved = savedModel(dir, 'stc_resnet3d_18', { numClasses: 6, frames: 8, widthMultiplier: 0.25 }, 8, 32);
  saved.model.dispose();
  const out = join(dir, 'model.onnx');
  await exportOnnx(saved.checkpoint, out, { verify: false });
  const model = decodeModel(readFileSync(out));
  checkGraph(model);
  const ops = new Set(model.graph.node.map((n) => n.op_type));
  assert.ok(!ops.has('BatchNormalization'), 'no BatchNormalization node');
  for (const op of ['Conv', 'Relu', 'MaxPool', 'Add', 'Mul', 'Sigmoid', 'Gemm', 'GlobalAveragePool', 'Reshape']) assert.ok(ops.has(op), `uses ${op}`);
  // 20 convolutions in an 18-layer ResNet (17 + 3 shortcut), each with its folded bias.
  const convs = model.graph.node.filter((n) => n.op_type === 'Conv');
  assert.equal(convs.length, 20);
  for (const conv of convs) assert.equal(conv.input.length, 3, `${conv.name} has a (folded) bias`);
  assert.ok(model.graph.initializer.some((t) => t.name === 'layer1.0.stc.scb.fc1.weight'), 'initializers are named after the parameters');
  const [input] = model.graph.input;
  assert.equal(input!.name, 'clips');
  const dims = input!.type.tensor_type.shape.dim;
  assert.equal(dims[0]!.dim_param, 'batch');
  assert.deepEqual(dims.slice(1).map((d) => int64Value(d.dim_value)), [3, 8, 32, 32]);
  const [output] = model.graph.output;
  assert.equal(output!.name, 'logits');
  assert.equal(output!.type.tensor_type.shape.dim[0]!.dim_param, 'batch');
  assert.equal(int64Value(output!.type.tensor_type.shape.dim[1]!.dim_value), 6);
});

test('metadata round trip: classes, preprocessing, input spec and options come back from the file (readOnnxMetadata, parseOnnxMetadata)', async () => {
  const dir = tempDir('stcnet-export-meta-');
  const saved = savedModel(dir, 'resnet3d_10', { numClasses: 3, widthMultiplier: 0.25 }, 4, 32);
  saved.model.dispose();
  const labels = join(dir, 'labels.txt');
  const names = ['Jumping Jack', 'naïve – ünïcode', 'a "quoted", comma'];
  const { writeFileSync } = await import('node:fs');
  writeFileSync(labels, names.join('\n') + '\n');
  const out = join(dir, 'model.onnx');
  const result = await exportOnnx(saved.checkpoint, out, { labels, verify: false, batch: 4 });
  const meta = readOnnxMetadata(out);
  assert.equal(meta.arch, 'resnet3d_10');
  assert.deepEqual(meta.classes, names);
  assert.deepEqual(meta.preprocessing, saved.preprocessing);
  assert.deepEqual(meta.input, { name: 'clips', layout: 'NCTHW', batch: 4, channels: 3, frames: 4, size: 32 });
  assert.equal(meta.output, 'logits');
  assert.equal(meta.options.numClasses, 3);
  assert.match(meta.version, /^\d+\.\d+\.\d+/);
  assert.deepEqual({ ...result.metadata }, { arch: meta.arch, classes: meta.classes, preprocessing: meta.preprocessing, input: meta.input, output: meta.output, options: meta.options, version: meta.version });
  assert.deepEqual(parseOnnxMetadata(readFileSync(out)), meta);
  // The protobuf decoder agrees with the field scanner.
  const props = Object.fromEntries(decodeModel(readFileSync(out)).metadata_props.map((p) => [p.key, p.value]));
  assert.deepEqual(props, meta.raw);
  assert.equal(int64Value(decodeModel(readFileSync(out)).graph.input[0]!.type.tensor_type.shape.dim[0]!.dim_value), 4);
});

test('the graph builder refuses what would make an invalid graph', () => {
  const g = new GraphBuilder('t');
  const x = g.input({ name: 'x', shape: ['batch', 4] });
  assert.throws(() => g.node('Relu', ['missing'], 'y'), /reads "missing", which no earlier node makes/);
  assert.throws(() => g.floats('x', [1], new Float32Array(1)), /"x" is used twice/);
  assert.throws(() => g.floats('w', [2, 2], new Float32Array(3)), /3 values for shape \[2, 2\]/);
  const y = g.node('Relu', [x], 'y');
  assert.equal(g.node('Relu', [y], 'y'), 'y_1', 'a repeated output name is made unique');
  assert.throws(() => g.toModel([{ name: 'nothing', shape: [1] }], { opset: 17, irVersion: 8, producerVersion: '0', metadata: {} }), /output "nothing" is not made/);
});
