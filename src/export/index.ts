/**
 * ONNX export of zoo models. `exportOnnx` loads libtorch and onnxruntime-node only when called, so
 * importing this module is cheap.
 */
export {
  exportOnnx, checkOnnxOut, DEFAULT_OPSET, OPSETS, type ExportOnnxOptions, type ExportOnnxResult,
} from './export_onnx.js';
export { GraphBuilder, type TensorSpec, type AttributeValue } from './onnx_graph.js';
export { encodeModel, decodeModel, int64Value, DataType, AttributeType, type ModelProto, type GraphProto, type NodeProto, type TensorProto } from './onnx_schema.js';
