/** out[n] = Σ_m x[m, n] for x [M, N] with row stride ldx (elements): a bias gradient. */
export function colSum(M: i32, N: i32, x: usize, ldx: i32, out: usize): void {
  const ldx4 = <usize>ldx << 2;
  let n = 0;
  for (; n + 4 <= N; n += 4) {
    let acc = f32x4.splat(0);
    let p = x + (<usize>n << 2);
    for (let m = 0; m < M; m++) {
      acc = f32x4.add(acc, v128.load(p));
      p += ldx4;
    }
    v128.store(out + (<usize>n << 2), acc);
  }
  for (; n < N; n++) {
    let acc: f32 = 0;
    let p = x + (<usize>n << 2);
    for (let m = 0; m < M; m++) {
      acc += load<f32>(p);
      p += ldx4;
    }
    store<f32>(out + (<usize>n << 2), acc);
  }
}
