/**
 * A row of the bad-input corpora (badInputs.test.ts: hostile files against the CLI;
 * badInputsModel.test.ts: bad models): how the input is made and what the CLI must answer.
 */
export interface BadInput {
  /** What the input is. */
  name: string;
  /** Builds the input inside `dir` (a fresh empty temp folder) and returns the CLI arguments. */
  make: (dir: string) => string[] | Promise<string[]>;
  /** The expected exit code. */
  exit: number;
  /** What stderr must match: the phrase that names the file and the problem. */
  stderr: RegExp;
  stdout?: RegExp;
  /** Wall-time limit. */
  maxSeconds: number;
}
