/** `vit-lens train | runs | export` (training engine issue). */
export async function runTrainCommand(command: string, _args: string[]): Promise<number> {
  throw new Error(`"${command}" is not available yet`);
}
