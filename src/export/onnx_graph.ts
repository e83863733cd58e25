import {
  AttributeType, DataType, encodeModel,
  type AttributeProto, type Dimension, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto,
} from './onnx_schema.js';

/**
 * A small ONNX graph builder: initializers (weights) by name, nodes in the order they are added
 * (which is topological, since a node can only name values that already exist), and unique value
 * names. `toModel` wraps the graph with its opset and metadata.
 */

export type AttributeValue = number | string | number[] | { float: number } | { floats: number[] };

/** A graph input or output: element type float32, each dimension a size or a symbolic name ('batch'). */
export interface TensorSpec {
  name: string;
  shape: (number | string)[];
}

export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  /** Every value name in the graph: inputs, initializers and node outputs. */
  private readonly names = new Set<string>();
  private readonly nodeNames = new Set<string>();
  private readonly inputs: ValueInfoProto[] = [];

  constructor(readonly name: string) {}

  /** Declares a graph input. */
  input(spec: TensorSpec): string {
    this.claim(spec.name);
    this.inputs.push(valueInfo(spec));
    return spec.name;
  }

  /** A float32 initializer (stored as raw little-endian bytes). */
  floats(name: string, dims: number[], data: Float32Array): string {
    if (data.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`ONNX writer: ${name}: ${data.length} values for shape [${dims.join(', ')}]`);
    this.claim(name);
    this.initializers.push({ name, dims, data_type: DataType.FLOAT, raw_data: littleEndian(data) });
    return name;
  }

  /** An int64 initializer (shapes and pads). */
  int64s(name: string, values: number[]): string {
    this.claim(name);
    this.initializers.push({ name, dims: [values.length], data_type: DataType.INT64, int64_data: values });
    return name;
  }

  /**
   * Adds a node; its output is named `output` (made unique) and returned. Inputs must already exist
   * (graph inputs, initializers or earlier outputs), which keeps the node list topologically sorted.
   */
  node(opType: string, inputs: string[], output: string, attributes: Record<string, AttributeValue> = {}): string {
    for (const input of inputs) if (!this.names.has(input)) throw new Error(`ONNX writer: ${opType} node reads "${input}", which no earlier node makes`);
    const out = this.unique(output);
    this.claim(out);
    const nodeName = this.uniqueNode(`${opType}:${out}`);
    this.nodes.push({
      name: nodeName, op_type: opType, input: inputs, output: [out],
      attribute: Object.entries(attributes).map(([key, value]) => attribute(key, value)),
    });
    return out;
  }

  /** The ModelProto: this graph with `outputs` declared, the default-domain opset and string metadata. */
  toModel(outputs: TensorSpec[], options: { opset: number; irVersion: number; producerVersion: string; metadata: Record<string, string>; docString?: string }): ModelProto {
    for (const output of outputs) if (!this.names.has(output.name)) throw new Error(`ONNX writer: output "${output.name}" is not made by any node`);
    return {
      ir_version: options.irVersion,
      producer_name: 'stcnet',
      producer_version: options.producerVersion,
      ...(options.docString ? { doc_string: options.docString } : {}),
      graph: { name: this.name, node: this.nodes, initializer: this.initializers, input: this.inputs, output: outputs.map(valueInfo) },
      opset_import: [{ domain: '', version: options.opset }],
      metadata_props: Object.entries(options.metadata).map(([key, value]) => ({ key, value })),
    };
  }

  encode(outputs: TensorSpec[], options: Parameters<GraphBuilder['toModel']>[1]): Uint8Array {
    return encodeModel(this.toModel(outputs, options));
  }

  get nodeCount(): number {
    return this.nodes.length;
  }

  /** Bytes of weight data so far (the bulk of the encoded file). */
  get initializerBytes(): number {
    return this.initializers.reduce((total, t) => total + (t.raw_data?.length ?? 0) + 8 * (t.int64_data?.length ?? 0), 0);
  }

  private claim(name: string): void {
    if (this.names.has(name)) throw new Error(`ONNX writer: the value name "${name}" is used twice`);
    this.names.add(name);
  }

  private unique(base: string): string {
    if (!this.names.has(base)) return base;
    for (let n = 1; ; n++) if (!this.names.has(`${base}_${n}`)) return `${base}_${n}`;
  }

  private uniqueNode(base: string): string {
    let name = base;
    for (let n = 1; this.nodeNames.has(name); n++) name = `${base}_${n}`;
    this.nodeNames.add(name);
    return name;
  }
}

function valueInfo(spec: TensorSpec): ValueInfoProto {
  const dim: Dimension[] = spec.shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d }));
  return { name: spec.name, type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim } } } };
}

function attribute(name: string, value: AttributeValue): AttributeProto {
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`ONNX writer: attribute ${name}: ${value} is not an integer (use { float } for floats)`);
    return { name, type: AttributeType.INT, i: value };
  }
  if (typeof value === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: AttributeType.INTS, ints: value };
  if ('float' in value) return { name, type: AttributeType.FLOAT, f: value.float };
  return { name, type: AttributeType.FLOATS, floats: value.floats };
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The bytes of a float32 array in little-endian order (ONNX's raw_data layout), whatever the host's order. */
function littleEndian(data: Float32Array): Uint8Array {
  if (HOST_LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  const bytes = new Uint8Array(data.byteLength);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i]!, true);
  return bytes;
}
