export { crc32c, maskedCrc32c, frameRecord, scanRecords } from './tfrecord';
export type { TfRecord, TfRecordProblem, TfRecordScan } from './tfrecord';
export { EventDecoder, tensorScalar, DT_FLOAT, DT_DOUBLE } from './events';
export type { Scalar, DecodedRecord } from './events';
export { TfEventsFolder, formatProblem } from './watcher';
export type { RunScalar, TfEventsProblem, PollResult, Disposable } from './watcher';
