/** Is process `pid` still running? One implementation for the engine and the extension (extension/runs/runProbes.ts). */
export { processAlive } from '../../extension/runs/runProbes';
