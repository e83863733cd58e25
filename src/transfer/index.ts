export { runTransfer, resumeTransferConfig, readTransferSummary, type RunTransferOptions, type TransferSummary, type TransferEvent, type TransferStepRecord, type TransferEpochRecord } from './transfer.js';
export { validateTransferConfig, TRANSFER_DEFAULTS, TRANSFER_FORMATS, TEACHER_ARCHS, type TransferConfig } from './config.js';
export { TransferHead, PROJECTION, HEAD_WIDTHS } from './head.js';
export { PairSampler, itemKey, type Pair, type PairSamplerOptions } from './pairs.js';
export { loadTeacher, freezeTeacher, teacherFeatures, teacherFrameIndices } from './teacher.js';
export { TeacherCache } from './teacher_cache.js';
