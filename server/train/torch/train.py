"""ViT Lens trainer on PyTorch: one ViT fine-tuning run, data-parallel under torchrun.

    python -m torch.distributed.run --nproc_per_node N train.py RUN_DIR/torch/job.json
    USE_LIBUV=0 python train.py --torchrun --nproc_per_node N train.py RUN_DIR/torch/job.json
      (the same, on a PyTorch built without libuv: see store_follows_use_libuv)

The TypeScript launcher (server/train/torchBackend.ts) prepares everything this file needs in
RUN_DIR/torch/: job.json (config, architecture, classes, schedule), init.safetensors (initial
weights, our canonical names), train.u8 / val.u8 (decoded, resized HWC uint8 images, the same
pixels the TF.js trainer sees). This file writes the run folder like the TF.js trainer does:
metrics.jsonl, checkpoints/{latest,best}.safetensors (weights + optimizer state + loop position),
report.json's held-out predictions, run.json's progress; the launcher exports the model at the end.

Same arithmetic as server/train/trainer.ts: the shuffle and crop boxes come from the same seeded
generator (rng.ts), the loss is the mean over each optimizer step's images, weight decay applies to
matrices only, clipping and schedule as clip_grad_norm_ and linear warmup + cosine.

Depends only on torch (1.13 or later). No pickle: tensors are read and written as safetensors here.
"""
import json
import math
import os
import runpy
import signal
import socket
import struct
import sys
import time
import traceback

import torch
import torch.distributed as dist
import torch.nn.functional as F

# ---------------------------------------------------------------- safetensors (JSON header + raw bytes)

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    body = memoryview(data)[8 + n:]
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        raw = bytearray(body[a:b])
        t = torch.frombuffer(raw, dtype=DTYPES[e["dtype"]]) if b > a else torch.empty(0, dtype=DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"]).float()
    return out, meta


def temp_path(path):
    """Our temp-file pattern (server/util/atomicFile.ts): hidden, beside the target, naming its writer's pid."""
    return os.path.join(os.path.dirname(path), ".%s.%d.%x.tmp" % (os.path.basename(path), os.getpid(), time.time_ns() & 0xFFFFFFFF))


def write_atomic(path, data):
    tmp = temp_path(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_safetensors(path, tensors, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, t in tensors.items():
        b = t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    write_atomic(path, struct.pack("<Q", len(js)) + js + b"".join(blobs))


# ---------------------------------------------------------------- seeded randomness (server/train/rng.ts)

M32 = 0xFFFFFFFF


def imul(a, b):
    return (a * b) & M32


def mulberry32(seed):
    state = [seed & M32]

    def rnd():
        state[0] = (state[0] + 0x6D2B79F5) & M32
        t = state[0]
        t = imul(t ^ (t >> 15), t | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & M32
        return ((t ^ (t >> 14)) & M32) / 4294967296

    return rnd


def mix_seed(*parts):
    h = 0x811C9DC5
    for p in parts:
        v = p & M32
        for _ in range(4):
            h = imul(h ^ (v & 0xFF), 0x01000193)
            v >>= 8
    h ^= h >> 16
    h = imul(h, 0x85EBCA6B)
    h ^= h >> 13
    return h & M32


def shuffled(n, rnd):
    a = list(range(n))
    for i in range(n - 1, 0, -1):
        j = math.floor(rnd() * (i + 1))
        a[i], a[j] = a[j], a[i]
    return a


PURPOSE_SHUFFLE, PURPOSE_AUGMENT = 3, 4


def learning_rate(step, base, warmup, total):
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * base * (1 + math.cos(math.pi * progress))


# ---------------------------------------------------------------- the model (server/train/vitModel.ts)


def layer_names(i):
    p = "vit.encoder.layer.%d." % i
    return {k: p + v for k, v in dict(
        n1w="layernorm_before.weight", n1b="layernorm_before.bias", qw="attention.attention.query.weight", qb="attention.attention.query.bias",
        kw="attention.attention.key.weight", kb="attention.attention.key.bias", vw="attention.attention.value.weight", vb="attention.attention.value.bias",
        pw="attention.output.dense.weight", pb="attention.output.dense.bias", n2w="layernorm_after.weight", n2b="layernorm_after.bias",
        f1w="intermediate.dense.weight", f1b="intermediate.dense.bias", f2w="output.dense.weight", f2b="output.dense.bias").items()}


def trainable_names(arch, mode, last_k, names):
    head = [n for n in ("pre_logits.dense.weight", "pre_logits.dense.bias") if n in names] + ["classifier.weight", "classifier.bias"]
    if mode == "head":
        return head
    first = 0 if mode == "full" else arch["numLayers"] - last_k
    out = [n for n in names if n.startswith("vit.embeddings.")] if mode == "full" else []
    for i in range(first, arch["numLayers"]):
        out += [n for n in layer_names(i).values() if n in names]
    return out + ["vit.layernorm.weight", "vit.layernorm.bias"] + head


class ViT(torch.nn.Module):
    """Parameters keyed by our canonical (Hugging Face) names; the forward pass as plain functions over them."""

    def __init__(self, arch, weights):
        super().__init__()
        self.arch = arch
        self.names = list(weights)
        self.params = torch.nn.ParameterList([torch.nn.Parameter(weights[n].clone()) for n in self.names])
        self.index = {n: i for i, n in enumerate(self.names)}

    def p(self, name):
        return self.params[self.index[name]] if name in self.index else None

    def embed(self, x):
        a = self.arch
        t = F.conv2d(x, self.p("vit.embeddings.patch_embeddings.projection.weight"), self.p("vit.embeddings.patch_embeddings.projection.bias"), stride=a["patchSize"])
        t = t.flatten(2).transpose(1, 2)
        cls = self.p("vit.embeddings.cls_token").expand(x.shape[0], -1, -1)
        return torch.cat([cls, t], 1) + self.p("vit.embeddings.position_embeddings")

    def block(self, i, x):
        a, l = self.arch, layer_names(i)
        n, t, d = x.shape
        heads = a["numHeads"]
        dh = d // heads
        h = F.layer_norm(x, (d,), self.p(l["n1w"]), self.p(l["n1b"]), a["layerNormEps"])
        split = lambda y: y.reshape(n, t, heads, dh).transpose(1, 2)
        q, k, v = (split(F.linear(h, self.p(l[w]), self.p(l[b]))) for w, b in (("qw", "qb"), ("kw", "kb"), ("vw", "vb")))
        if hasattr(F, "scaled_dot_product_attention"):
            # torch ≥ 2.0: the fused kernel (flash or memory-efficient on a GPU, flash on a CPU), same math and
            # scale; 1.13 (Debian 12's) takes the explicit form below.
            ctx = F.scaled_dot_product_attention(q, k, v)
        else:
            ctx = torch.softmax(q @ k.transpose(-1, -2) * (1 / math.sqrt(dh)), -1) @ v
        ctx = ctx.transpose(1, 2).reshape(n, t, d)
        x = x + F.linear(ctx, self.p(l["pw"]), self.p(l["pb"]))
        h = F.layer_norm(x, (d,), self.p(l["n2w"]), self.p(l["n2b"]), a["layerNormEps"])
        return x + F.linear(F.gelu(F.linear(h, self.p(l["f1w"]), self.p(l["f1b"]))), self.p(l["f2w"]), self.p(l["f2b"]))

    def tokens_before(self, x, to_block):
        x = self.embed(x)
        for i in range(to_block):
            x = self.block(i, x)
        return x

    def features(self, tokens):
        return F.layer_norm(tokens[:, 0], (tokens.shape[-1],), self.p("vit.layernorm.weight"), self.p("vit.layernorm.bias"), self.arch["layerNormEps"])

    def head(self, f):
        if "pre_logits.dense.weight" in self.index:
            f = torch.tanh(F.linear(f, self.p("pre_logits.dense.weight"), self.p("pre_logits.dense.bias")))
        return F.linear(f, self.p("classifier.weight"), self.p("classifier.bias"))

    def forward(self, x, kind="pixels", from_block=0):
        """Logits from pixels, from tokens entering block `from_block`, or from final [CLS] features."""
        if kind == "features":
            return self.head(x)
        if kind == "pixels":
            x = self.embed(x)
        for i in range(from_block, self.arch["numLayers"]):
            x = self.block(i, x)
        return self.head(self.features(x))

    def weights(self):
        return {n: self.params[i].detach() for i, n in enumerate(self.names)}


# ---------------------------------------------------------------- data (uint8 HWC images from the launcher)


class Images:
    """N decoded images, resized to the model's input, as the launcher wrote them (memory-mapped)."""

    def __init__(self, path, n, h, w, pre):
        self.path, self.n, self.h, self.w = path, n, h, w
        self.u8 = self.mapped()
        scale = pre["rescaleFactor"] if pre["doRescale"] else 1.0
        mean = pre["mean"] if pre["doNormalize"] else [0.0, 0.0, 0.0]
        inv_std = [1 / s for s in pre["std"]] if pre["doNormalize"] else [1.0, 1.0, 1.0]
        self.scale = scale
        self.mean = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
        self.inv_std = torch.tensor(inv_std, dtype=torch.float64).view(1, 3, 1, 1)

    def mapped(self):
        n, h, w = self.n, self.h, self.w
        return torch.from_file(self.path, shared=False, size=n * h * w * 3, dtype=torch.uint8).reshape(n, h, w, 3) if n else None

    # A loader worker maps the file itself: a mapped tensor cannot be sent to a process that does not
    # fork from this one (forkserver, spawn), and mapping it again costs nothing.
    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "u8"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.u8 = self.mapped()

    def normalise(self, u8_nhwc):
        # (v·scale − mean)·(1/std) in float64, then float32: server/preprocess.ts's toPixelValues exactly,
        # on whichever device holds the pixels (IEEE float64 gives the same values on a GPU).
        x = u8_nhwc.permute(0, 3, 1, 2).double()
        return ((x * self.scale - self.mean.to(x.device)) * self.inv_std.to(x.device)).float()

    def batch(self, idx, augment=None):
        return self.normalise(self.pixels(idx, augment))

    def pixels(self, idx, augment=None):
        """uint8 NHWC pixels of images idx, augmented when given a generator factory (one per image)."""
        if augment is None or not idx:
            return self.u8[idx]
        return self.augmented(idx, [augment(k) for k in range(len(idx))])

    def augmented(self, idx, rngs):
        """Random-resized-crop (the trainer's box rule, imageLoader.ts) of each resized image, bilinear back to
        size, then a coin-flip mirror; one seeded generator per image draws its box, then its coin. The pixels
        are F.interpolate's (bilinear, align_corners=False) of each crop, computed for the whole batch at once:
        per-image source indices and weights, four gathers, one weighted sum."""
        boxes, flips = [], []
        for rnd in rngs:
            boxes.append(crop_box(self.w, self.h, rnd))
            flips.append(rnd() < 0.5)
        left, top, cw, ch = torch.tensor(boxes, dtype=torch.int64).unbind(1)
        y0, y1, hy0, hy1 = bilinear_taps(top, ch, self.h)
        x0, x1, wx0, wx1 = bilinear_taps(left, cw, self.w)
        mirror = torch.tensor(flips).unsqueeze(1)
        x0, x1, wx0, wx1 = (torch.where(mirror, t.flip(1), t) for t in (x0, x1, wx0, wx1))
        img = self.u8[idx].float()
        b = torch.arange(len(idx)).view(-1, 1, 1)
        at = lambda y, x: img[b, y.unsqueeze(2), x.unsqueeze(1)]  # (B, H, W, 3)
        w0, w1 = wx0.view(len(idx), 1, -1, 1), wx1.view(len(idx), 1, -1, 1)
        h0, h1 = hy0.view(len(idx), -1, 1, 1), hy1.view(len(idx), -1, 1, 1)
        out = (h0 * w0) * at(y0, x0) + (h0 * w1) * at(y0, x1) + (h1 * w0) * at(y1, x0) + (h1 * w1) * at(y1, x1)
        return out.round().clamp(0, 255).to(torch.uint8)


def bilinear_taps(start, size, out_len):
    """For crops [start, start+size) of each image resized to out_len: the two source indices and their
    weights per output pixel, by PyTorch's rule for bilinear, align_corners=False (UpSample.h,
    compute_source_index_and_lambda): src = max((i + 0.5)·scale − 0.5, 0), scale = size/out_len in
    float32 and src in float64 (matching the CPU kernel's weights more closely than float32 does)."""
    scale = (size.float() / out_len).double().unsqueeze(1)
    src = (scale * (torch.arange(out_len, dtype=torch.float64) + 0.5) - 0.5).clamp(min=0)
    i0 = src.long()
    i1 = i0 + (i0 < size.unsqueeze(1) - 1).long()
    l1 = (src - i0).float()
    return start.unsqueeze(1) + i0, start.unsqueeze(1) + i1, 1 - l1, l1


class MicroBatches(torch.utils.data.Dataset):
    """Key (epoch, b): this rank's share of micro-batch b of that epoch's seeded shuffle, as (uint8
    pixels, labels, image indices); the loop normalises them on its device (a quarter of float32's bytes to copy). Every random choice comes from generators seeded by (seed, epoch, b,
    image), so the batches are the same whichever process prepares them."""

    def __init__(self, images, labels, cfg, world, rank, with_pixels=True):
        self.images, self.labels, self.cfg, self.world, self.rank, self.with_pixels = images, labels, cfg, world, rank, with_pixels
        self.order = (None, None)

    def __getitem__(self, key):
        epoch, b = key
        if self.order[0] != epoch:
            self.order = (epoch, shuffled(self.images.n, mulberry32(mix_seed(self.cfg["seed"], PURPOSE_SHUFFLE, epoch))))
        bs = self.cfg["batchSize"]
        batch = self.order[1][b * bs:(b + 1) * bs]
        mine = [batch[i] for i in torch.tensor_split(torch.arange(len(batch)), self.world)[self.rank].tolist()]
        aug = (lambda k: mulberry32(mix_seed(self.cfg["seed"], PURPOSE_AUGMENT, epoch, b * 1_000_003 + k))) if self.cfg["augment"] else None
        x = self.images.pixels(mine, aug) if self.with_pixels else torch.empty(0)
        return x, self.labels[mine], torch.tensor(mine, dtype=torch.int64)


def crop_box(width, height, rnd, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3)):
    area = width * height
    lr0, lr1 = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * (scale[0] + rnd() * (scale[1] - scale[0]))
        r = math.exp(lr0 + rnd() * (lr1 - lr0))
        w, h = round(math.sqrt(target * r)), round(math.sqrt(target / r))
        if 0 < w <= width and 0 < h <= height:
            return math.floor(rnd() * (width - w + 1)), math.floor(rnd() * (height - h + 1)), w, h
    s = min(width, height)
    return (width - s) // 2, (height - s) // 2, s, s


# ---------------------------------------------------------------- run-folder files (server/train/runFiles.ts)


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def write_json(path, value, indent=None):
    write_atomic(path, (json.dumps(value, indent=indent) + "\n").encode())


def now_iso():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def save_checkpoint(path, model, optimizer, loop, trainable, cfg):
    tensors = dict(model.weights())
    if optimizer is not None:
        for name in trainable:
            st = optimizer.state.get(model.p(name), {})
            slots = [st.get("exp_avg"), st.get("exp_avg_sq")] if cfg["optimizer"] == "adamw" else [st.get("momentum_buffer")]
            for i, s in enumerate(slots):
                if s is not None:
                    tensors["optim.%d.%s" % (i, name)] = s
    write_safetensors(path, tensors, {"vit_lens.loop_state": json.dumps(loop), "format": "pt"})


def restore_optimizer(optimizer, model, tensors, step, cfg):
    for name, t in tensors.items():
        if not name.startswith("optim."):
            continue
        slot, pname = name.split(".", 2)[1:]
        p = model.p(pname)
        st = optimizer.state[p]
        key = ("exp_avg", "exp_avg_sq")[int(slot)] if cfg["optimizer"] == "adamw" else "momentum_buffer"
        st[key] = t.to(p.device)
        if cfg["optimizer"] == "adamw":
            st["step"] = torch.tensor(float(step))


# ---------------------------------------------------------------- torchrun without libuv


def store_follows_use_libuv():
    """From torch 2.4 on, TCPStore's use_libuv defaults to True, and torchrun's rendezvous handlers and
    the ranks' connection to torchrun's store leave it there whatever USE_LIBUV says (pytorch/pytorch#178600).
    On a build without libuv (Windows wheels, Debian's packages) torchrun then fails before any rank starts.
    With USE_LIBUV=0 (the launcher sets it when its probe finds such a build), the stores these modules
    create get use_libuv=False unless they ask otherwise; nothing changes elsewhere."""
    base = dist.TCPStore
    if os.environ.get("USE_LIBUV") != "0" or "use_libuv" not in (base.__init__.__doc__ or "") or getattr(base, "follows_use_libuv", False):
        return  # not asked, a torch whose store has no such option (before 2.2), or done already

    class TCPStore(base):
        follows_use_libuv = True

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("use_libuv", False)
            super().__init__(*args, **kwargs)

    dist.TCPStore = TCPStore
    # Modules that bound the name on import (torch.distributed.rendezvous); torchrun's handlers import theirs later.
    for name, module in list(sys.modules.items()):
        if name.startswith("torch.distributed") and getattr(module, "TCPStore", None) is base:
            module.TCPStore = TCPStore


# ---------------------------------------------------------------- the loop


def all_gather_bytes(data, device):
    """Every rank's bytes, in rank order: a length all-reduce, then an all-gather of uint8 tensors padded
    with spaces (no pickle, unlike all_gather_object; NCCL needs the tensors on the GPU)."""
    n = torch.tensor([len(data)], dtype=torch.int64, device=device)
    dist.all_reduce(n, op=dist.ReduceOp.MAX)
    mine = torch.full((int(n.item()),), 32, dtype=torch.uint8, device=device)
    mine[:len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device)
    out = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(out, mine)
    return [bytes(t.cpu().tolist()).rstrip(b" ") for t in out]


def main(job_path):
    job = read_json(job_path)
    run_dir, tdir = job["runDir"], os.path.dirname(job_path)
    cfg, arch = job["config"], job["arch"]
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = job["device"] == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank)
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if world > 1:
        store_follows_use_libuv()
        dist.init_process_group("nccl" if cuda else "gloo")
    torch.manual_seed(cfg["seed"])
    # The leader writes the run folder and logs: local rank 0 on the launcher's node 0 (the one that prepared
    # the job). Under c10d rendezvous it need not be global rank 0: torchrun orders nodes by host name and pid.
    here = dict(node=int(os.environ.get("VIT_LENS_NODE_RANK", 0)), local=local_rank, host=socket.gethostname(),
                device="cuda:%d %s" % (local_rank, torch.cuda.get_device_name(local_rank)) if cuda else "cpu:%d" % local_rank)
    ranks = [json.loads(b) for b in all_gather_bytes(json.dumps(here).encode(), device)] if world > 1 else [here]
    leader = [(r["node"], r["local"]) for r in ranks].index((0, 0))
    is_leader = rank == leader
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if is_leader else (lambda line: None)

    # Stop requests: a signal to any rank, the launcher's stop file, or the launcher gone (kill -9) —
    # all ranks learn it in the same step's all-reduce and stop together after that step.
    stop_local = [False]
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop_local.__setitem__(0, True))
    stop_file = os.path.join(tdir, "stop")

    launcher = int(os.environ.get("VIT_LENS_LAUNCHER_PID", "0"))
    # Test hook: after this step the leader waits (up to a minute) for a stop request (the launcher's
    # stop file, a signal, the launcher gone), so that a test's stop lands on a known step however fast
    # the steps run.
    hold_at_step = int(os.environ.get("VIT_LENS_TEST_HOLD_AT_STEP", "0"))

    def stop_wanted():
        """This rank's view: a signal, the stop file (the leader reads it), or its node's launcher gone."""
        if stop_local[0] or (is_leader and os.path.exists(stop_file)):
            return True
        try:
            if launcher:
                os.kill(launcher, 0)
            return False
        except ProcessLookupError:
            return True
        except PermissionError:
            return False

    weights, _ = read_safetensors(os.path.join(tdir, "init.safetensors"))
    model = ViT(arch, weights).to(device)
    trainable = trainable_names(arch, cfg["mode"], cfg["lastK"], model.names)
    for i, n in enumerate(model.names):
        model.params[i].requires_grad_(n in trainable)
    decay = [model.p(n) for n in trainable if model.p(n).dim() >= 2 and n.endswith(".weight")]
    no_decay = [model.p(n) for n in trainable if not (model.p(n).dim() >= 2 and n.endswith(".weight"))]
    groups = [{"params": decay, "weight_decay": cfg["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg["optimizer"] == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8)
    else:
        optimizer = torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"])

    loop = dict(epoch=0, batchInEpoch=0, step=0, bestValAcc=-1, bestEpoch=-1, epochLossSum=0, epochCorrect=0, epochSeen=0)
    latest = os.path.join(run_dir, "checkpoints", "latest.safetensors")
    if job.get("resume") and os.path.exists(latest):
        tensors, meta = read_safetensors(latest)
        with torch.no_grad():
            for n in model.names:
                if n in tensors:
                    model.p(n).copy_(tensors[n].to(device))
        loop = json.loads(meta["vit_lens.loop_state"])
        restore_optimizer(optimizer, model, tensors, loop["step"], cfg)
        log("resuming at epoch %d, step %d" % (loop["epoch"] + 1, loop["step"]))

    h, w = arch["imageSize"]
    train = Images(os.path.join(tdir, "train.u8"), len(job["trainLabels"]), h, w, job["preprocess"])
    val = Images(os.path.join(tdir, "val.u8"), len(job["valLabels"]), h, w, job["preprocess"])
    train_labels = torch.tensor(job["trainLabels"], dtype=torch.int64)
    val_labels = torch.tensor(job["valLabels"], dtype=torch.int64)
    from_block = arch["numLayers"] - cfg["lastK"] if cfg["mode"] == "last-k" else 0
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if cuda else None)

    # AMP on CUDA: bfloat16 where the card has it (no loss scaling), else float16 with a GradScaler.
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda and job.get("amp", True) else None
    # torch.amp.GradScaler("cuda") from 2.3 on (torch.cuda.amp's is deprecated there); 1.13 has only the latter.
    new_scaler = getattr(torch.amp, "GradScaler", None)
    scaler = (new_scaler("cuda") if new_scaler else torch.cuda.amp.GradScaler()) if amp_dtype == torch.float16 else None

    def autocast():
        return torch.autocast("cuda", dtype=amp_dtype) if amp_dtype else torch.autocast("cpu", enabled=False)

    def frozen_input(x):
        """What the trainable part sees: pixels (full), tokens after block L−k (last-k), [CLS] features (head)."""
        if cfg["mode"] == "full":
            return x, "pixels"
        with torch.no_grad(), autocast():
            if cfg["mode"] == "head":
                return model.features(model.tokens_before(x, arch["numLayers"])).float(), "features"
            return model.tokens_before(x, from_block).float(), "tokens"

    # Head mode without augmentation: the frozen backbone runs once per image (the TF.js trainer caches these features on disk).
    cached = None
    if cfg["mode"] == "head" and not cfg["augment"]:
        bs = cfg["batchSize"]
        cached = torch.cat([frozen_input(train.batch(list(range(i, min(i + bs, train.n)))).to(device))[0] for i in range(0, train.n, bs)])

    # Micro-batches are prepared ahead by a DataLoader's workers (on CUDA; on CPU they would take cores from
    # the step) over the whole run, resuming where the loop stands; VIT_LENS_LOADER_WORKERS overrides.
    batches_of = MicroBatches(train, train_labels, cfg, world, rank, with_pixels=cached is None)
    workers = int(os.environ.get("VIT_LENS_LOADER_WORKERS", min(4, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", 1))) if cuda else 0))
    keys = [(e, b) for e in range(loop["epoch"], cfg["epochs"]) for b in range(loop["batchInEpoch"] if e == loop["epoch"] else 0, math.ceil(train.n / cfg["batchSize"]))]
    # Workers start from a fresh server process, not a fork of this one (its CUDA context and threads): the
    # default from Python 3.14 on, set here so that every Python starts them the same way.
    start = "forkserver" if "forkserver" in torch.multiprocessing.get_all_start_methods() else "spawn"
    batches = iter(torch.utils.data.DataLoader(batches_of, batch_size=None, sampler=keys, num_workers=workers, pin_memory=cuda,
                                               multiprocessing_context=start if workers else None))

    def train_input(epoch, micro):
        """The next micro-batch from the loader (it must be this one: the loop and the loader walk the same keys)."""
        x, y, idx = next(batches)
        if cached is not None:
            return (cached[idx], "features"), y.to(device, non_blocking=True)
        return frozen_input(train.normalise(x.to(device, non_blocking=True))), y.to(device, non_blocking=True)

    def evaluate():
        """Held-out metrics. Each rank runs its contiguous share of the images; the shares' logits meet in one
        all-reduced [N, K] tensor, each row filled by one rank and zero on the others (so the sum is exact),
        and every rank derives the same loss, confusion and predictions from it, in image order."""
        model.eval()
        K = arch["numClasses"]
        share = torch.tensor_split(torch.arange(val.n), world)[rank].tolist()
        logits = torch.zeros(val.n, K, dtype=torch.float32, device=device)
        with torch.no_grad():
            for i in range(0, len(share), cfg["batchSize"]):
                idx = share[i:i + cfg["batchSize"]]
                x, kind = frozen_input(val.batch(idx).to(device))
                with autocast():
                    logits[idx] = model(x, kind, from_block).float()
        model.train()
        rank_note("rank %d validated %d of %d held-out images" % (rank, len(share), val.n))
        if world > 1:
            dist.all_reduce(logits)
        loss_sum = F.cross_entropy(logits, val_labels.to(device), reduction="sum").item()
        probs = torch.softmax(logits, -1).cpu().tolist()
        confusion = [[0] * K for _ in range(K)]
        preds = []
        for k, p in enumerate(probs):
            best = max(range(K), key=lambda c: (p[c], -c))
            confusion[job["valLabels"][k]][best] += 1
            preds.append(dict(file=job["valFiles"][k], label=job["valLabels"][k], predicted=best, probabilities=[round(v * 1e6) / 1e6 for v in p]))
        correct = sum(confusion[k][k] for k in range(K))
        per_class = [(row[k] / sum(row)) if sum(row) else None for k, row in enumerate(confusion)]
        return dict(loss=loss_sum / val.n, acc=correct / val.n, perClassAcc=per_class, confusion=confusion, predictions=preds)

    def update_run_json(**fields):
        info = read_json(os.path.join(run_dir, "run.json"))
        info.update(fields)
        info["updatedAt"] = now_iso()
        write_json(os.path.join(run_dir, "run.json"), info, indent=2)

    if is_leader:
        nodes = len({r["node"] for r in ranks})
        update_run_json(devices=[r["device"] if nodes == 1 else "node %d (%s) %s" % (r["node"], r["host"], r["device"])
                                 for r in sorted(ranks, key=lambda r: (r["node"], r["local"]))])

    def best_fields():
        if loop["bestEpoch"] < 0:
            return {}
        key = "bestValAcc" if val.n else "bestTrainAcc"
        return {key: loop["bestValAcc"], "bestEpoch": loop["bestEpoch"]}

    def append_metrics(m):
        with open(os.path.join(run_dir, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(m) + "\n")

    bs, acc_n = cfg["batchSize"], cfg["accumulate"]
    micro_per_epoch = math.ceil(train.n / bs)
    total_steps = job["totalSteps"]
    every = job.get("checkpointEvery") or {"seconds": 300}
    last_checkpoint = time.time()
    model.train()
    log("training %d images (%d validation) on %d process%s (%s), mode %s, %d steps, %d loader worker%s" % (train.n, val.n, world, "es" if world > 1 else "", "cuda" if cuda else "cpu", cfg["mode"], total_steps, workers, "" if workers == 1 else "s"))
    stopped = False
    for epoch in range(loop["epoch"], cfg["epochs"]):
        epoch_start = time.time()
        while loop["batchInEpoch"] < micro_per_epoch:
            step_start = time.time()
            lr = learning_rate(loop["step"], cfg["lr"], cfg["warmupSteps"], total_steps)
            for g in optimizer.param_groups:
                g["lr"] = lr
            micro = min(acc_n, micro_per_epoch - loop["batchInEpoch"])
            first = loop["batchInEpoch"]
            step_images = sum(min(bs, train.n - b * bs) for b in range(first, first + micro))
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            correct = torch.zeros((), dtype=torch.float64, device=device)
            for m in range(micro):
                # This rank's share of the micro-batch; its summed loss × world / step images makes DDP's
                # gradient average the gradient of the mean loss over all the step's images.
                (x, kind), y = train_input(epoch, first + m)
                sync = m == micro - 1 or world == 1
                ctx = net.no_sync() if not sync else _nullcontext()
                with ctx:
                    with autocast():
                        z = net(x, kind, from_block)
                    loss = F.cross_entropy(z.float(), y, reduction="sum", label_smoothing=cfg["labelSmoothing"])
                    scaled = loss * (world / step_images)
                    (scaler.scale(scaled) if scaler else scaled).backward()
                loss_sum += loss.detach().double()
                correct += (z.detach().argmax(1) == y).sum().double()
            loop["batchInEpoch"] += micro
            if scaler:
                scaler.unscale_(optimizer)
            params = [model.p(n) for n in trainable]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg["clipNorm"] if cfg["clipNorm"] > 0 else float("inf"))
            stats = torch.stack([loss_sum, correct, torch.tensor(1.0 if stop_wanted() else 0.0, dtype=torch.float64, device=device)])
            if world > 1:
                dist.all_reduce(stats)
            step_loss = stats[0].item() / step_images
            if not math.isfinite(step_loss):
                raise RuntimeError("loss became %s at epoch %d, step %d (lr %.3e); stopped instead of training on garbage — try a lower --lr" % (step_loss, epoch + 1, loop["step"] + 1, lr))
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loop["step"] += 1
            loop["epochLossSum"] += step_loss * step_images
            loop["epochCorrect"] += int(stats[1].item())
            loop["epochSeen"] += step_images
            stop = stats[2].item() > 0
            if is_leader:
                ips = step_images / max(1e-3, time.time() - step_start)
                if loop["step"] % job.get("logEvery", 10) == 0 or loop["batchInEpoch"] == micro_per_epoch:
                    append_metrics(dict(type="step", epoch=epoch, step=loop["step"], loss=step_loss, lr=lr, gradNorm=float(grad_norm), imagesPerSec=ips, time=now_iso()))
                    log("epoch %d/%d step %d/%d loss %.4f lr %.2e %.1f img/s" % (epoch + 1, cfg["epochs"], loop["step"], total_steps, step_loss, lr, ips))
                due = loop["step"] % every["steps"] == 0 if "steps" in every and every["steps"] > 0 else ("seconds" in every and every["seconds"] > 0 and time.time() - last_checkpoint >= every["seconds"])
                if loop["batchInEpoch"] < micro_per_epoch and (due or stop):
                    save_checkpoint(latest, model, optimizer, loop, trainable, cfg)
                    last_checkpoint = time.time()
                    update_run_json(step=loop["step"], epoch=epoch)
                    log("checkpoint at epoch %d, step %d" % (epoch + 1, loop["step"]))
            if is_leader and loop["step"] == hold_at_step and not stop:
                deadline = time.time() + 60
                while not stop_wanted() and time.time() < deadline:
                    time.sleep(0.01)
            if stop and loop["batchInEpoch"] < micro_per_epoch:
                log("stopped at epoch %d, step %d; resume with --resume" % (epoch + 1, loop["step"]))
                stopped = True
                break
        if stopped:
            break
        # End of epoch: validate (every rank its share), then checkpoint and record (the leader; the others wait at the barrier).
        ev = evaluate() if val.n else None
        if is_leader:
            train_loss = loop["epochLossSum"] / loop["epochSeen"] if loop["epochSeen"] else float("nan")
            train_acc = loop["epochCorrect"] / loop["epochSeen"] if loop["epochSeen"] else 0.0
            score = ev["acc"] if ev else train_acc
            if score > loop["bestValAcc"]:
                loop["bestValAcc"], loop["bestEpoch"] = score, epoch
                save_checkpoint(os.path.join(run_dir, "checkpoints", "best.safetensors"), model, None, loop, trainable, cfg)
                report = read_json(os.path.join(run_dir, "report.json"), {"skipped": [], "warnings": [], "heldOut": []})
                report["bestEpoch"], report["heldOut"] = epoch, ev["predictions"] if ev else []
                write_json(os.path.join(run_dir, "report.json"), report)
            m = dict(type="epoch", epoch=epoch, step=loop["step"], trainLoss=train_loss, trainAcc=train_acc)
            if ev:
                m.update(valLoss=ev["loss"], valAcc=ev["acc"], perClassAcc=ev["perClassAcc"], confusion=ev["confusion"])
            m.update(seconds=time.time() - epoch_start, time=now_iso())
            append_metrics(m)
            log("epoch %d/%d: train loss %.4f acc %.2f%%%s" % (epoch + 1, cfg["epochs"], train_loss, train_acc * 100, ", val loss %.4f acc %.2f%%" % (ev["loss"], ev["acc"] * 100) if ev else ""))
        loop.update(epoch=epoch + 1, batchInEpoch=0, epochLossSum=0, epochCorrect=0, epochSeen=0)
        if is_leader:
            save_checkpoint(latest, model, optimizer, loop, trainable, cfg)
            last_checkpoint = time.time()
            update_run_json(epoch=epoch + 1, step=loop["step"], **best_fields())
        if world > 1:
            dist.barrier()
        flag = torch.tensor([1.0 if stop_wanted() else 0.0], device=device)
        if world > 1:
            dist.all_reduce(flag)
        if flag.item() > 0 and epoch + 1 < cfg["epochs"]:
            stopped = True
            break
    if is_leader:
        write_json(os.path.join(tdir, "outcome.json"), {"status": "stopped" if stopped else "finished", "epoch": loop["epoch"], "step": loop["step"]})
    if world > 1:
        dist.destroy_process_group()


RANK_LOG = []


def rank_note(line):
    """A line for this rank's own log file only (RUN_DIR/torch/rank<N>.log), not the launcher's output."""
    for f in RANK_LOG:
        f.write(line + "\n")
        f.flush()


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for f in self.streams:
            f.write(s)
        return len(s)

    def flush(self):
        for f in self.streams:
            f.flush()


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


if __name__ == "__main__" and sys.argv[1:2] == ["--torchrun"]:
    store_follows_use_libuv()
    sys.argv = ["torchrun"] + sys.argv[2:]
    runpy.run_module("torch.distributed.run", run_name="__main__", alter_sys=True)
elif __name__ == "__main__":
    # Each rank's stderr also goes to RUN_DIR/torch/rank<N>.log, so the launcher can name a failed rank and show its last lines.
    job_file = sys.argv[1]
    r = int(os.environ.get("RANK", 0))
    log_file = open(os.path.join(os.path.dirname(job_file), "rank%d.log" % r), "a")
    sys.stderr = _Tee(sys.__stderr__, log_file)
    RANK_LOG.append(log_file)
    try:
        main(job_file)
    except BaseException:
        text = traceback.format_exc()
        with open(os.path.join(os.path.dirname(job_file), "rank%d.failed" % r), "w") as f:
            f.write(text)
        sys.stderr.write(text)
        sys.exit(1)
