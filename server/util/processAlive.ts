/** Is process `pid` still running? One implementation for the engine and the extension (see extension/runs/runStatus.ts). */
export { processAlive } from '../../extension/runs/runStatus';
