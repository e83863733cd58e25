import protobuf from 'protobufjs';

/**
 * The subset of ONNX's protobuf schema (onnx/onnx.proto, proto2) that stcnet writes and reads back,
 * as a protobufjs reflection descriptor. Field names and numbers are onnx.proto's own: the numbers
 * are the file format, so each one here must stay exactly as the spec defines it. Messages and
 * fields stcnet never uses (sparse tensors, functions, training info, ...) are left out; a decoder
 * skips unknown fields, so files from other tools still decode.
 */

const int64 = (id: number) => ({ type: 'int64', id });
const int32 = (id: number) => ({ type: 'int32', id });
const string = (id: number) => ({ type: 'string', id });
const bytes = (id: number) => ({ type: 'bytes', id });
const message = (type: string, id: number) => ({ type, id });
const repeated = (type: string, id: number) => ({ rule: 'repeated', type, id });

const descriptor = {
  nested: {
    onnx: {
      nested: {
        /** TensorProto.DataType: the element types stcnet writes. */
        DataType: { values: { UNDEFINED: 0, FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, STRING: 8, BOOL: 9, FLOAT16: 10, DOUBLE: 11 } },
        AttributeType: {
          values: { UNDEFINED: 0, FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8, TENSORS: 9, GRAPHS: 10 },
        },
        StringStringEntryProto: { fields: { key: string(1), value: string(2) } },
        OperatorSetIdProto: { fields: { domain: string(1), version: int64(2) } },
        TensorProto: {
          fields: {
            dims: repeated('int64', 1),
            data_type: int32(2),
            float_data: repeated('float', 4),
            int32_data: repeated('int32', 5),
            int64_data: repeated('int64', 7),
            name: string(8),
            raw_data: bytes(9),
            doc_string: string(12),
          },
        },
        TensorShapeProto: {
          fields: { dim: repeated('Dimension', 1) },
          nested: {
            Dimension: {
              oneofs: { value: { oneof: ['dim_value', 'dim_param'] } },
              fields: { dim_value: int64(1), dim_param: string(2), denotation: string(3) },
            },
          },
        },
        TypeProto: {
          oneofs: { value: { oneof: ['tensor_type'] } },
          fields: { tensor_type: message('Tensor', 1), denotation: string(6) },
          nested: { Tensor: { fields: { elem_type: int32(1), shape: message('TensorShapeProto', 2) } } },
        },
        ValueInfoProto: { fields: { name: string(1), type: message('TypeProto', 2), doc_string: string(3) } },
        AttributeProto: {
          fields: {
            name: string(1),
            f: { type: 'float', id: 2 },
            i: int64(3),
            s: bytes(4),
            t: message('TensorProto', 5),
            g: message('GraphProto', 6),
            floats: repeated('float', 7),
            ints: repeated('int64', 8),
            strings: repeated('bytes', 9),
            doc_string: string(13),
            type: { type: 'AttributeType', id: 20 },
          },
        },
        NodeProto: {
          fields: {
            input: repeated('string', 1),
            output: repeated('string', 2),
            name: string(3),
            op_type: string(4),
            attribute: repeated('AttributeProto', 5),
            doc_string: string(6),
            domain: string(7),
          },
        },
        GraphProto: {
          fields: {
            node: repeated('NodeProto', 1),
            name: string(2),
            initializer: repeated('TensorProto', 5),
            doc_string: string(10),
            input: repeated('ValueInfoProto', 11),
            output: repeated('ValueInfoProto', 12),
            value_info: repeated('ValueInfoProto', 13),
          },
        },
        ModelProto: {
          fields: {
            ir_version: int64(1),
            producer_name: string(2),
            producer_version: string(3),
            domain: string(4),
            model_version: int64(5),
            doc_string: string(6),
            graph: message('GraphProto', 7),
            opset_import: repeated('OperatorSetIdProto', 8),
            metadata_props: repeated('StringStringEntryProto', 14),
          },
        },
      },
    },
  },
};

/** TensorProto.DataType values (onnx.proto). */
export const DataType = { FLOAT: 1, INT64: 7 } as const;

/** AttributeProto.AttributeType values (onnx.proto). */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

// ---- the messages as plain objects (snake_case, as onnx.proto names the fields) ----

/** int64 fields decode as numbers or as Long objects (protobufjs uses `long` when installed). */
export type Int64 = number | { toNumber(): number };

export interface TensorProto {
  name: string;
  dims: Int64[];
  data_type: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  int64_data?: Int64[];
}

export interface Dimension {
  dim_value?: Int64;
  dim_param?: string;
}

export interface TypeProto {
  tensor_type: { elem_type: number; shape: { dim: Dimension[] } };
}

export interface ValueInfoProto {
  name: string;
  type: TypeProto;
  doc_string?: string;
}

export interface AttributeProto {
  name: string;
  type: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  floats?: number[];
  ints?: Int64[];
}

export interface NodeProto {
  name: string;
  op_type: string;
  input: string[];
  output: string[];
  attribute: AttributeProto[];
  domain?: string;
  doc_string?: string;
}

export interface GraphProto {
  name: string;
  node: NodeProto[];
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  value_info?: ValueInfoProto[];
  doc_string?: string;
}

export interface ModelProto {
  ir_version: Int64;
  producer_name: string;
  producer_version: string;
  domain?: string;
  model_version?: Int64;
  doc_string?: string;
  graph: GraphProto;
  opset_import: { domain: string; version: Int64 }[];
  metadata_props: { key: string; value: string }[];
}

let root: protobuf.Root | undefined;

function modelType(): protobuf.Type {
  root ??= protobuf.Root.fromJSON(descriptor);
  return root.lookupType('onnx.ModelProto');
}

/** The ModelProto as protobuf bytes. */
export function encodeModel(model: ModelProto): Uint8Array {
  const type = modelType();
  const error = type.verify(model);
  if (error) throw new Error(`ONNX writer: invalid ModelProto (${error})`);
  return type.encode(type.fromObject(model)).finish();
}

/** Decodes ModelProto bytes (int64 fields as numbers); throws protobufjs's error on bytes that are not one. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  const type = modelType();
  const decoded = type.decode(bytes);
  return type.toObject(decoded, { longs: Number, arrays: true, defaults: false }) as ModelProto;
}

/** An int64 field's value as a number. */
export function int64Value(value: Int64 | undefined): number {
  if (value === undefined) return 0;
  return typeof value === 'number' ? value : value.toNumber();
}
