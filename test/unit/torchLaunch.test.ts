/**
 * How --backend torch starts torchrun (server/train/torchBackend.ts torchLaunch): the standard
 * `-m torch.distributed.run`, or, on a PyTorch built without libuv (Windows wheels, Debian's 2.x),
 * train.py's --torchrun with USE_LIBUV=0, whose stores then follow it (torchrun's own do not).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { torchLaunch, trainScript } from '../../server/train/torchBackend';

test('a torch with libuv, or one whose store has no such option, runs torchrun as python -m', () => {
  for (const probe of [{}, { libuvStore: undefined }]) {
    const launch = torchLaunch(probe, 'cpu', {});
    assert.deepEqual(launch, { torchrun: ['-m', 'torch.distributed.run'], env: {}, notes: [] });
  }
});

test('a torch built without libuv runs torchrun through train.py --torchrun with USE_LIBUV=0, and says so', () => {
  for (const env of [{}, { USE_LIBUV: '0' }]) {
    const launch = torchLaunch({ libuvStore: false }, 'cpu', env);
    assert.deepEqual(launch.torchrun, [trainScript(), '--torchrun']);
    assert.deepEqual(launch.env, { USE_LIBUV: '0' });
    assert.equal(launch.notes.length, 1);
    assert.match(launch.notes[0], /built without libuv.*USE_LIBUV=0/);
  }
  // The user's own USE_LIBUV=1 is kept (torchrun will then say what is wrong).
  assert.deepEqual(torchLaunch({ libuvStore: false }, 'cpu', { USE_LIBUV: '1' }).torchrun, [
    '-m',
    'torch.distributed.run',
  ]);
});

test('the reference BLAS is a note on the CPU (how to get an optimised one), not on CUDA', () => {
  const referenceBlas = '/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.12.1';
  const cpu = torchLaunch({ referenceBlas }, 'cpu', {});
  assert.equal(cpu.notes.length, 1);
  assert.match(
    cpu.notes[0],
    /reference BLAS \(\/usr\/lib\/x86_64-linux-gnu\/blas\/libblas\.so\.3\.12\.1\).*apt install libopenblas0-pthread/,
  );
  assert.deepEqual(cpu.torchrun, ['-m', 'torch.distributed.run']);
  assert.deepEqual(torchLaunch({ referenceBlas }, 'cuda', {}).notes, []);
});
