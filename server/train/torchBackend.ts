/**
 * `vit-lens train … --backend torch`: the run goes to PyTorch (DistributedDataParallel under torchrun)
 * and the run folder stays ours. This side does what must be identical on both backends — dataset
 * scan and split, initial weights from every INIT kind, image decoding and resizing (sharp) — and
 * hands Python files in RUN_DIR/torch/: job.json, init.safetensors, train.u8 / val.u8 (HWC uint8).
 * server/train/torch/train.py trains and writes metrics, checkpoints and report.json as trainer.ts
 * does; this side then sets the final status and exports the best checkpoint with our builder.
 */
import { spawn, spawnSync } from 'child_process';
import { randomBytes } from 'crypto';
import { existsSync, promises as fs, readFileSync } from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { readSafetensorsHeader, writeSafetensors } from '../formats/safetensors';
import { decodeImageFile, resizeForModel, type PreprocessConfig } from '../preprocess';
import { initBackend } from './backend';
import type { LoopState } from './checkpoint';
import type { Sample, SkippedFile } from './datasetFolder';
import { exportHfFolder } from './exportModel';
import { loadCheckpoint } from './checkpoint';
import { initialWeights } from './initWeights';
import {
  carryOverReport,
  checkpointFile,
  exportDir,
  readRunInfo,
  RunInfo,
  RunReport,
  runFile,
  RUN_FORMAT_VERSION,
  TrainConfig,
  truncateMetrics,
  writeReport,
  writeRunInfo,
} from './runFiles';
import { stepPlan } from './schedule';
import { lockRun } from './runLock';
import { checkNewRunFolder, cleanTempFiles, folderData, TrainingError } from './trainer';
import { tempPathFor } from '../util/atomicFile';
import { OPENBLAS_CORE_PY, openBlasOverride } from './openblasCore';

/** torch.frombuffer, label_smoothing and torchrun's current flags all exist from 1.13 on. */
export const MIN_TORCH = [1, 13];

export interface TorchOptions {
  /** Interpreter to use; else VIT_LENS_PYTHON, else python3 on PATH. */
  python?: string;
  /** Processes on this machine (default: the CUDA device count, else 1). */
  nproc?: number;
  /** cuda or cpu (default: cuda when torch sees a GPU). */
  device?: 'cuda' | 'cpu';
  nnodes?: number;
  nodeRank?: number;
  /** HOST:PORT where node 0 hosts torchrun's c10d rendezvous (multi-node). */
  rdzvEndpoint?: string;
  /** Mixed precision on CUDA (default on). */
  amp?: boolean;
}

export interface TorchProbe {
  /** What is run: as given (a wrapper script or shim stays one, with whatever it sets up). */
  python: string;
  /** The interpreter that answered (sys.executable): what a shim, wrapper or bare name led to. */
  executable: string;
  torch: string;
  cuda: boolean;
  devices: string[];
  /** The core OpenBLAS picked in that interpreter, when torch uses OpenBLAS (Debian's builds do; pip's use MKL). */
  openblasCore?: string;
  /** False when this torch has the use_libuv store option but was built without libuv (Debian's 2.x builds). */
  libuvStore?: boolean;
  /** The netlib reference BLAS torch loaded, when it did (Debian's 2.x builds, until an optimised one is installed). */
  referenceBlas?: string;
}

const PROBE = `import json, sys
try:
    import torch
except Exception as e:
    print(json.dumps({"error": "%s: %s" % (type(e).__name__, e), "executable": sys.executable})); sys.exit(0)
${OPENBLAS_CORE_PY}
def libuv_store():
    if "use_libuv" not in (torch.distributed.TCPStore.__init__.__doc__ or ""):
        return None  # no such option (before 2.2): the store never uses libuv
    if sys.platform == "win32":
        return False  # PyTorch's Windows builds have none (torch.distributed.rendezvous assumes so too); no test server there, which would ask the firewall
    try:
        torch.distributed.TCPStore("127.0.0.1", 0, 1, True, use_libuv=True, wait_for_workers=False)
        return True
    except Exception:
        return False
def reference_blas():
    # Debian's netlib reference BLAS is .../blas/libblas.so.3 (the optimised ones: openblas-*/, blis-*/, atlas/).
    try:
        with open("/proc/self/maps") as maps:
            return next((p for p in (l.split()[-1] for l in maps) if "/blas/libblas.so" in p), None)
    except OSError:
        return None
cuda = torch.cuda.is_available()
dist = torch.distributed.is_available()
print(json.dumps({"executable": sys.executable, "torch": torch.__version__, "cuda": cuda, "distributed": dist,
  "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
  "openblas": openblas_core(), "libuv": libuv_store() if dist else None, "referenceBlas": reference_blas()}))`;

/** Which interpreter, and what it has: torch's version and the CUDA devices; a clear error when it cannot train. */
export function probePython(explicit?: string): TorchProbe {
  const python = explicit ?? process.env.VIT_LENS_PYTHON ?? 'python3';
  const from = explicit ? '--python' : process.env.VIT_LENS_PYTHON ? 'VIT_LENS_PYTHON' : 'python3 on PATH';
  const r = spawnSync(python, ['-c', PROBE], { encoding: 'utf8', timeout: 120_000 });
  if (r.error)
    throw new TrainingError(
      `${python} (${from}): cannot run it (${(r.error as NodeJS.ErrnoException).code ?? r.error.message}); pass --python PATH to an interpreter with PyTorch`,
    );
  let out: {
    error?: string;
    executable?: string;
    torch?: string;
    cuda?: boolean;
    distributed?: boolean;
    devices?: string[];
    openblas?: string | null;
    libuv?: boolean | null;
    referenceBlas?: string | null;
  };
  try {
    out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
  } catch {
    throw new TrainingError(
      `${python} (${from}): did not answer the torch check (exit ${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' ')}`,
    );
  }
  if (out.error)
    throw new TrainingError(
      `${python} (${from}) cannot import torch (${out.error}); install PyTorch for ${out.executable && out.executable !== python ? out.executable : 'it'} (pip install torch) or pass --python PATH to an interpreter that has it`,
    );
  const [major, minor] = (out.torch ?? '0.0').split('.').map(s => parseInt(s, 10));
  if (major < MIN_TORCH[0] || (major === MIN_TORCH[0] && minor < MIN_TORCH[1]))
    throw new TrainingError(
      `${python} (${from}) has torch ${out.torch}, too old: --backend torch needs ${MIN_TORCH.join('.')} or later`,
    );
  if (!out.distributed)
    throw new TrainingError(`${python} (${from}): this torch ${out.torch} was built without torch.distributed`);
  return {
    python,
    executable: out.executable || python,
    torch: out.torch!,
    cuda: !!out.cuda,
    devices: out.devices ?? [],
    ...(out.openblas ? { openblasCore: out.openblas } : {}),
    ...(out.libuv === false ? { libuvStore: false } : {}),
    ...(out.referenceBlas ? { referenceBlas: out.referenceBlas } : {}),
  };
}

export interface TorchLaunch {
  /** How torchrun is started: `-m torch.distributed.run`, or train.py's --torchrun on a build without libuv. */
  torchrun: string[];
  /** What torchrun and the ranks need in their environment beyond ours. */
  env: Record<string, string>;
  /** Lines for the run's notes: each change, and what the user should change. */
  notes: string[];
}

/** How to start torchrun with this interpreter on this machine. A variable the user set is kept. */
export function torchLaunch(
  probe: Pick<TorchProbe, 'openblasCore' | 'libuvStore' | 'referenceBlas'>,
  device: 'cuda' | 'cpu',
  env: NodeJS.ProcessEnv = process.env,
): TorchLaunch {
  const out: TorchLaunch = { torchrun: ['-m', 'torch.distributed.run'], env: {}, notes: [] };
  // Under a hypervisor Debian's OpenBLAS may fall back to SSE3 kernels (openblasCore.ts).
  const openBlas = openBlasOverride(probe.openblasCore, env);
  if (openBlas) {
    out.env.OPENBLAS_CORETYPE = openBlas.core;
    out.notes.push(openBlas.note);
  }
  // From torch 2.4 on torchrun's stores ask for libuv, and on a build without it (Windows wheels,
  // Debian's) torchrun fails before any rank starts; train.py's --torchrun makes them follow USE_LIBUV.
  if (probe.libuvStore === false && (env.USE_LIBUV ?? '0') === '0') {
    out.env.USE_LIBUV = '0';
    out.torchrun = [trainScript(), '--torchrun'];
    out.notes.push(
      "This PyTorch was built without libuv, which torchrun's stores ask for: torchrun runs through train.py --torchrun with USE_LIBUV=0",
    );
  }
  const blas = device === 'cpu' ? referenceBlasWarning(probe) : undefined;
  if (blas) out.notes.push(blas);
  return out;
}

/**
 * What a CPU run's notes and log and torch-check say when torch loaded the reference BLAS (Debian's
 * torch 2.x links the system libblas.so.3, netlib's unless an optimised one is installed).
 */
export function referenceBlasWarning(probe: Pick<TorchProbe, 'referenceBlas'>): string | undefined {
  return probe.referenceBlas
    ? `PyTorch uses the unoptimised reference BLAS (${probe.referenceBlas}): training on the CPU runs many times slower (about 20× in our benchmark) than with an optimised one (Debian/Ubuntu: apt install libopenblas0-pthread)`
    : undefined;
}

/** What the Fine-tune form shows: "PyTorch · CUDA ×8 (NVIDIA H100)" or "PyTorch · CPU". */
export function torchLabel(p: Pick<TorchProbe, 'cuda' | 'devices'>): string {
  return p.cuda && p.devices.length ? `PyTorch · CUDA ×${p.devices.length} (${p.devices[0]})` : 'PyTorch · CPU';
}

/** train.py beside the bundle (dist/torch-train.py, copied by the build) or in the source tree. */
export function trainScript(): string {
  for (const f of [
    path.join(__dirname, 'torch-train.py'),
    path.join(__dirname, 'torch', 'train.py'),
    path.join(__dirname, '..', 'server', 'train', 'torch', 'train.py'),
  ]) {
    if (existsSync(f)) return f;
  }
  throw new Error('train.py for --backend torch is missing from this installation');
}

/** A TCP port free on 127.0.0.1 now (torchrun's single-node store). */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });

/** run.json of a torch run: our RunInfo plus the devices and how PyTorch was started (resume reuses it). */
export interface TorchRunInfo extends RunInfo {
  /** One per rank, in node then local-rank order; the launcher writes node 0's, train.py every node's once they have met. */
  devices: string[];
  torch: { python: string; version: string; nproc: number; device: 'cuda' | 'cpu' };
}

const definedOnly = <T extends object>(o: T): Partial<T> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

interface Job {
  runDir: string;
  config: TrainConfig;
  arch: import('../model/vitConfig').ViTArch;
  preprocess: PreprocessConfig;
  trainFiles: string[];
  trainLabels: number[];
  valFiles: string[];
  valLabels: number[];
  totalSteps: number;
  device: 'cuda' | 'cpu';
  amp: boolean;
  resume: boolean;
  checkpointEvery?: { steps: number } | { seconds: number };
  logEvery?: number;
  /** New on every launch; every node passes it as torchrun's --rdzv_id, so they join this launch's rendezvous. */
  launchId: string;
}

/**
 * Decodes and resizes each sample (the engine's preprocessing up to the uint8 pixels) into one raw
 * file, written atomically; unreadable images are left out and listed in `skipped`.
 */
async function writeImages(
  file: string,
  samples: Sample[],
  pre: PreprocessConfig,
  skipped: SkippedFile[],
): Promise<Sample[]> {
  const temp = tempPathFor(file);
  const h = await fs.open(temp, 'w');
  const kept: Sample[] = [];
  try {
    for (let i = 0; i < samples.length; i += 16) {
      const part = samples.slice(i, i + 16);
      const pixels = await Promise.all(
        part.map(s =>
          decodeImageFile(s.file)
            .then(img => resizeForModel(img, pre))
            .catch((e: Error) => e),
        ),
      );
      for (let j = 0; j < part.length; j++) {
        const p = pixels[j];
        if (p instanceof Error) skipped.push({ file: part[j].file, reason: p.message });
        else {
          await h.write(p);
          kept.push(part[j]);
        }
      }
    }
    await h.sync();
  } finally {
    await h.close();
  }
  await fs.rename(temp, file);
  return kept;
}

export interface TorchTrainOptions {
  runDir: string;
  config: TrainConfig;
  resume: boolean;
  torch: TorchOptions;
  checkpointEvery?: { steps: number } | { seconds: number };
  logEvery?: number;
  log: (line: string) => void;
  /** Set by the caller's signal handler: 1 = stop after the current step, 2 = abort now. */
  onStopRequest?: (request: (level: 1 | 2) => void) => void;
}

export async function trainTorch(opts: TorchTrainOptions): Promise<RunInfo> {
  const { runDir, log } = opts;
  // --resume without --python/--nproc: the interpreter and process count the run started with.
  const started = opts.resume
    ? ((await readRunInfo(runDir).catch(() => undefined)) as TorchRunInfo | undefined)?.torch
    : undefined;
  opts = {
    ...opts,
    torch: { python: started?.python, nproc: started?.nproc, device: started?.device, ...definedOnly(opts.torch) },
  };
  const probe = probePython(opts.torch.python);
  const device = opts.torch.device ?? (probe.cuda ? 'cuda' : 'cpu');
  if (device === 'cuda' && !probe.cuda)
    throw new TrainingError(
      `${probe.python}: torch ${probe.torch} sees no CUDA device (torch.cuda.is_available() is False); use --device cpu or a CUDA build of PyTorch`,
    );
  const nproc = opts.torch.nproc ?? (device === 'cuda' ? probe.devices.length : 1);
  if (device === 'cuda' && nproc > probe.devices.length)
    throw new TrainingError(
      `--nproc ${nproc}: only ${probe.devices.length} CUDA device${probe.devices.length === 1 ? '' : 's'} here`,
    );
  const tdir = path.join(runDir, 'torch');
  const jobFile = path.join(tdir, 'job.json');
  if ((opts.torch.nodeRank ?? 0) > 0) return followerNode(opts, probe, jobFile, nproc);

  const existed = existsSync(runDir);
  if (!opts.resume) await checkNewRunFolder(runDir);
  await fs.mkdir(runDir, { recursive: true });
  let lock;
  try {
    lock = await lockRun(runDir);
  } catch (e) {
    if (!existed) await fs.rmdir(runDir).catch(() => {});
    throw e;
  }
  let written = false;
  let settled = false;
  try {
    await cleanTempFiles(runDir, log);
    let config = opts.config;
    let previous: RunInfo | undefined;
    if (opts.resume) config = (previous = await readRunInfo(runDir)).config;
    await initBackend('cpu'); // for position-embedding interpolation in initialWeights
    const data = await folderData(config);
    if (previous && previous.classes.join('\n') !== data.classes.join('\n')) {
      throw new TrainingError(
        `${config.dataset}: classes changed since the run started (${previous.classes.join(', ')} → ${data.classes.join(', ')})`,
      );
    }
    for (const w of data.warnings) log(`warning: ${w}`);
    const init = await initialWeights(config.model, {
      numClasses: data.classes.length,
      imageSize: config.imageSize,
      patchSize: config.patchSize,
      seed: config.seed,
    });
    const arch = init.arch;
    const pre: PreprocessConfig = { ...data.preprocess, size: arch.imageSize };
    if (config.mode === 'last-k' && (config.lastK < 1 || config.lastK > arch.numLayers)) {
      throw new TrainingError(`--last-k ${config.lastK} must be between 1 and the model's ${arch.numLayers} layers`);
    }
    await fs.mkdir(path.join(runDir, 'checkpoints'), { recursive: true });
    await fs.mkdir(tdir, { recursive: true });
    for (const f of await fs.readdir(tdir))
      if (/^(stop|outcome\.json|rank\d+\.(log|failed))$/.test(f)) await fs.rm(path.join(tdir, f), { force: true });

    // Loop position: from the latest checkpoint's header (metrics written after it are dropped).
    let loop: Partial<LoopState> = {};
    const latest = checkpointFile(runDir, 'latest');
    if (opts.resume && existsSync(latest)) {
      const raw = (await readSafetensorsHeader(latest)).metadata['vit_lens.loop_state'];
      if (!raw) throw new TrainingError(`${latest}: no loop state; cannot resume`);
      loop = JSON.parse(raw) as LoopState;
      await truncateMetrics(runDir, loop.step!, loop.epoch!);
    } else if (opts.resume) {
      log(`${latest} does not exist (the run ended before its first checkpoint); starting it over from the beginning`);
      await fs.rm(checkpointFile(runDir, 'best'), { force: true });
      await truncateMetrics(runDir, 0, 0);
    }

    // Images: reused when a previous launch of this run prepared the same samples.
    const skipped: SkippedFile[] = [...data.skipped];
    const old = opts.resume ? (JSON.parse(await fs.readFile(jobFile, 'utf8').catch(() => 'null')) as Job | null) : null;
    let train: Sample[];
    let val: Sample[];
    const sameList = (files: string[] | undefined, samples: Sample[]) =>
      !!files && samples.length >= files.length && files.every(f => samples.some(s => s.file === f));
    if (
      old &&
      sameList(old.trainFiles, data.train) &&
      sameList(old.valFiles, data.val) &&
      existsSync(path.join(tdir, 'train.u8')) &&
      existsSync(path.join(tdir, 'val.u8'))
    ) {
      train = old.trainFiles.map((file, i) => ({ file, label: old.trainLabels[i] }));
      val = old.valFiles.map((file, i) => ({ file, label: old.valLabels[i] }));
      const kept = new Set([...old.trainFiles, ...old.valFiles]);
      for (const s of [...data.train, ...data.val])
        if (!kept.has(s.file)) skipped.push({ file: s.file, reason: 'could not be read when the run started' });
    } else {
      log(`decoding ${data.train.length + data.val.length} images for PyTorch (${arch.imageSize.join('×')})`);
      train = await writeImages(path.join(tdir, 'train.u8'), data.train, pre, skipped);
      val = await writeImages(path.join(tdir, 'val.u8'), data.val, pre, skipped);
    }
    if (!train.length) throw new TrainingError(`${config.dataset}: no readable training images`);
    await writeSafetensors(path.join(tdir, 'init.safetensors'), init.weights, { format: 'pt' });

    const plan = stepPlan(train.length, config);
    const totalSteps = plan.totalSteps;
    config = plan.config;
    const nodes = opts.torch.nnodes ?? 1;
    const devices = Array.from({ length: nproc }, (_, i) =>
      device === 'cuda' ? `cuda:${i} ${probe.devices[i]}` : `cpu:${i}`,
    );
    const now = new Date().toISOString();
    const launch = torchLaunch(probe, device);
    const blas = device === 'cpu' ? referenceBlasWarning(probe) : undefined;
    if (blas) log(`warning: ${blas}`);
    const info: TorchRunInfo = {
      format: RUN_FORMAT_VERSION,
      config,
      classes: data.classes,
      backend: 'torch',
      backendNotes: [
        `PyTorch ${probe.torch} (${probe.python}${probe.executable !== probe.python ? ` → ${probe.executable}` : ''}), ${nodes > 1 ? `${nodes} nodes × ` : ''}${nproc} process${nproc > 1 ? 'es' : ''} on ${device === 'cuda' ? `CUDA (NCCL${opts.torch.amp === false ? '' : ', mixed precision'})` : 'CPU (gloo)'}`,
        ...launch.notes,
      ],
      devices,
      torch: { python: probe.python, version: probe.torch, nproc, device },
      status: 'running',
      pid: process.pid,
      host: os.hostname(),
      createdAt: previous?.createdAt ?? now,
      updatedAt: now,
      epoch: loop.epoch ?? 0,
      totalEpochs: config.epochs,
      step: loop.step ?? 0,
      totalSteps,
      ...(loop.bestEpoch !== undefined && loop.bestEpoch >= 0
        ? { [val.length ? 'bestValAcc' : 'bestTrainAcc']: loop.bestValAcc, bestEpoch: loop.bestEpoch }
        : {}),
      trainImages: train.length,
      valImages: val.length,
      architecture: arch,
      preprocess: pre,
      initNotes: init.notes,
    };
    await writeRunInfo(runDir, info);
    written = true;
    const report: RunReport = { skipped, warnings: [...data.warnings], heldOut: [] };
    if (opts.resume && loop.step !== undefined) await carryOverReport(runDir, report);
    await writeReport(runDir, report);
    if (skipped.length > data.skipped.length)
      log(
        `warning: ${skipped.length - data.skipped.length} image(s) could not be read and are left out (listed in report.json)`,
      );
    const job: Job = {
      runDir: path.resolve(runDir),
      config,
      arch,
      preprocess: pre,
      trainFiles: train.map(s => s.file),
      trainLabels: train.map(s => s.label),
      valFiles: val.map(s => s.file),
      valLabels: val.map(s => s.label),
      totalSteps,
      device,
      amp: opts.torch.amp !== false,
      resume: opts.resume && loop.step !== undefined,
      checkpointEvery: opts.checkpointEvery,
      logEvery: opts.logEvery,
      launchId: `${path.basename(runDir)}-${randomBytes(6).toString('hex')}`.replace(/[^\w.-]/g, '_'),
    };
    await fs.writeFile(jobFile + '.part', JSON.stringify(job));
    await fs.rename(jobFile + '.part', jobFile);

    const { code, lastLines } = await runTorchrun(opts, probe, launch, jobFile, job.launchId, nproc);
    const outcome = JSON.parse(await fs.readFile(path.join(tdir, 'outcome.json'), 'utf8').catch(() => 'null')) as {
      status: 'finished' | 'stopped';
    } | null;
    const final = await readRunInfo(runDir);
    const failure = code === 0 && outcome ? undefined : await rankFailure(tdir, code, lastLines);
    final.status = failure ? 'failed' : outcome!.status;
    final.reason = failure ?? (final.status === 'stopped' ? 'stop requested (SIGINT/SIGTERM)' : undefined);
    final.finishedAt = new Date().toISOString();
    await writeRunInfo(runDir, final);
    settled = true;
    if (existsSync(checkpointFile(runDir, 'best'))) {
      const { weights } = await loadCheckpoint(checkpointFile(runDir, 'best'));
      await exportHfFolder(exportDir(runDir), arch, weights, data.classes, pre, {
        vit_lens: { bestEpoch: final.bestEpoch, bestValAcc: final.bestValAcc },
      });
    }
    if (failure) throw new TrainingError(failure);
    return final;
  } catch (e) {
    // Failed after run.json said "running" (torchrun could not start, a full disk): say so there.
    if (written && !settled) {
      const info = await readRunInfo(runDir).catch(() => undefined);
      if (info)
        await writeRunInfo(runDir, {
          ...info,
          status: 'failed',
          reason: (e as Error).message,
          finishedAt: new Date().toISOString(),
        }).catch(() => {});
    }
    throw e;
  } finally {
    await lock.release();
    if (!existed && !existsSync(runFile(runDir))) await fs.rm(runDir, { recursive: true, force: true }).catch(() => {});
  }
}

/** Nodes other than node 0 (multi-node): wait for node 0's job in the shared run folder, then join. */
async function followerNode(
  opts: TorchTrainOptions,
  probe: TorchProbe,
  jobFile: string,
  nproc: number,
): Promise<RunInfo> {
  opts.log(`node ${opts.torch.nodeRank}: waiting for ${jobFile} (written by node 0 on the shared run folder)`);
  // A job file from an earlier launch (resume) does not count: node 0 writes a new one each time.
  const since = Date.now() - 5000;
  const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));
  while (((await fs.stat(jobFile).catch(() => undefined))?.mtimeMs ?? 0) < since) await sleep(1000);
  const job = JSON.parse(await fs.readFile(jobFile, 'utf8')) as Job;
  const { code, lastLines } = await runTorchrun(
    opts,
    probe,
    torchLaunch(probe, job.device),
    jobFile,
    job.launchId,
    nproc,
  );
  if (code !== 0) throw new TrainingError(await rankFailure(path.dirname(jobFile), code, lastLines));
  // Node 0 sets the final status after its ranks exit; report that, not "running".
  let info = await readRunInfo(opts.runDir);
  for (let i = 0; i < 120 && info.status === 'running'; i++) {
    await sleep(1000);
    info = await readRunInfo(opts.runDir);
  }
  return info;
}

/**
 * Runs torchrun in its own process group; a first stop request writes the stop file (all ranks stop
 * after the step), a second kills the group. Several nodes meet through torchrun's c10d rendezvous,
 * whose store node 0 hosts at --rdzv-endpoint (is_host says so, rather than torchrun guessing it from
 * the host name); one node uses a free local port.
 */
async function runTorchrun(
  opts: TorchTrainOptions,
  probe: TorchProbe,
  launch: TorchLaunch,
  jobFile: string,
  launchId: string,
  nproc: number,
): Promise<{ code: number; lastLines: string[] }> {
  const t = opts.torch;
  const nodes = t.nnodes ?? 1;
  const rdzv =
    nodes > 1
      ? [
          '--nnodes',
          String(nodes),
          '--rdzv_backend',
          'c10d',
          '--rdzv_endpoint',
          t.rdzvEndpoint!,
          '--rdzv_id',
          launchId,
          '--rdzv_conf',
          `is_host=${(t.nodeRank ?? 0) === 0 ? 1 : 0}`,
        ]
      : ['--nnodes', '1', '--node_rank', '0', '--master_addr', '127.0.0.1', '--master_port', String(await freePort())];
  // --redirects/--tee given explicitly: torchrun 1.13 on Python 3.11 cannot parse its own default "0" (Std flag lookup).
  const args = [
    ...launch.torchrun,
    '--nproc_per_node',
    String(nproc),
    ...rdzv,
    '--redirects',
    '2',
    '--tee',
    '2',
    trainScript(),
    jobFile,
  ];
  opts.log(`${probe.python} ${args.join(' ')}`);
  const child = spawn(probe.python, args, {
    detached: true,
    stdio: ['ignore', 'inherit', 'pipe'],
    env: {
      ...process.env,
      VIT_LENS_LAUNCHER_PID: String(process.pid),
      VIT_LENS_NODE_RANK: String(t.nodeRank ?? 0),
      OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? String(Math.max(1, Math.floor(os.cpus().length / nproc))),
      ...launch.env,
    },
  });
  let partial = '';
  // torchrun's own last lines (the ranks' carry a "[default0]:" prefix): why it failed when no rank got to say.
  const lastLines: string[] = [];
  const line = (l: string) => {
    const rank = /^\[[a-z]*\d+\]:/.exec(l);
    opts.log(rank ? l.slice(rank[0].length) : l);
    if (!rank && l.trim() && lastLines.push(l) > 6) lastLines.shift();
  };
  child.stderr!.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop()!;
    for (const l of lines) line(l);
  });
  opts.onStopRequest?.(level => {
    if (level === 1)
      void fs.writeFile(path.join(path.dirname(jobFile), 'stop'), `${new Date().toISOString()}\n`).catch(() => {});
    else if (child.pid)
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
  });
  return new Promise(resolve =>
    child
      .on('error', e => {
        opts.log(`${probe.python}: ${e.message}`);
        resolve({ code: 127, lastLines: [`${probe.python}: ${e.message}`] });
      })
      .on('close', (code, signal) => {
        if (partial) line(partial);
        resolve({ code: code ?? (signal ? 128 : 1), lastLines });
      }),
  );
}

/** The failed rank(s) and the last lines each wrote (RUN_DIR/torch/rank<N>.failed and .log from train.py). */
async function rankFailure(tdir: string, code: number, torchrunLines: string[]): Promise<string> {
  const names = (await fs.readdir(tdir).catch(() => [] as string[])).filter(f => /^rank\d+\.failed$/.test(f)).sort();
  if (!names.length)
    return `torchrun exited with code ${code} and no rank reported an error${torchrunLines.length ? `; torchrun's last lines:\n  ${torchrunLines.join('\n  ')}` : ' (see the log above)'}`;
  return names
    .map(f => {
      const text = readFileSync(path.join(tdir, f), 'utf8').trim().split('\n');
      return `rank ${/\d+/.exec(f)![0]} failed: ${text.slice(-6).join('\n  ')}`;
    })
    .join('\n');
}
