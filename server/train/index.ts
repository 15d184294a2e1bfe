/** Public API of the training engine (the CLI, the worker and the editor UI use these). */
export { train, TrainingError } from './trainer';
export type { TrainOptions, TrainData } from './trainer';
export { exportRun, exportHfFolder } from './exportModel';
export { scanDataset, DatasetError } from './datasetFolder';
export { IMAGE_EXTENSIONS } from '../../common/imageFiles';
export type { Dataset, Sample, SkippedFile } from './datasetFolder';
export {
  readRunInfo,
  readMetrics,
  processAlive,
  runFile,
  metricsFile,
  reportFile,
  checkpointFile,
  exportDir,
  RUN_FORMAT_VERSION,
} from './runFiles';
export type {
  RunInfo,
  RunStatus,
  TrainConfig,
  StepMetrics,
  EpochMetrics,
  RunReport,
  HeldOutPrediction,
} from './runFiles';
export { initBackend } from './backend';
export type { BackendName, BackendChoice } from './backend';
export { runTrainCommand, configFromArgs, TRAIN_USAGE } from './cli';
