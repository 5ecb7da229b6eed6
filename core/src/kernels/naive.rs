//! Direct, loop-by-loop implementations: the reference the fast kernels are
//! tested against, and the baseline the benchmarks compare with. Not meant
//! for real work.

use super::ConvGeometry;

/// Direct convolution, NHWC input, HWIO kernel (`[k_h, k_w, in_c / groups,
/// out_c]`), NHWC output: one multiply-add at a time, padding handled by
/// skipping cells outside; dilation and channel groups as `g` says.
pub fn conv2d(
    g: &ConvGeometry,
    input: &[f32],
    kernel: &[f32],
    bias: Option<&[f32]>,
    out_c: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; g.out_pixels() * out_c];
    let cg = g.group_in_c();
    let og = out_c / g.groups.max(1);
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let o = ((b * g.out_h + oy) * g.out_w + ox) * out_c;
                for f in 0..out_c {
                    let mut acc = bias.map_or(0.0, |b| b[f]);
                    // The input channels of this filter's group.
                    let c0 = f / og.max(1) * cg;
                    for ky in 0..g.k_h {
                        let iy = (oy * g.s_h + ky * g.d_h) as isize - g.pad_top as isize;
                        if iy < 0 || iy >= g.in_h as isize {
                            continue;
                        }
                        for kx in 0..g.k_w {
                            let ix = (ox * g.s_w + kx * g.d_w) as isize - g.pad_left as isize;
                            if ix < 0 || ix >= g.in_w as isize {
                                continue;
                            }
                            for c in 0..cg {
                                let x = input[((b * g.in_h + iy as usize) * g.in_w + ix as usize)
                                    * g.in_c
                                    + c0
                                    + c];
                                let w = kernel[((ky * g.k_w + kx) * cg + c) * out_c + f];
                                acc += x * w;
                            }
                        }
                    }
                    out[o + f] = acc;
                }
            }
        }
    }
    out
}

/// Direct pooling: the maximum (or mean) of each window's cells that lie
/// inside the input; padding cells never count. The maximum is the
/// library's, taken one value at a time: the last NaN of a window wins
/// (a NaN must not vanish); without one, the first of the largest values,
/// so `-0` before `+0` stays `-0`.
pub fn pool2d(g: &ConvGeometry, input: &[f32], max: bool) -> Vec<f32> {
    let c = g.in_c;
    let mut out = vec![0.0f32; g.out_pixels() * c];
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                for ch in 0..c {
                    let mut best = f32::NEG_INFINITY;
                    let mut sum = 0.0f32;
                    let mut count = 0usize;
                    for ky in 0..g.k_h {
                        for kx in 0..g.k_w {
                            let iy = (oy * g.s_h + ky) as isize - g.pad_top as isize;
                            let ix = (ox * g.s_w + kx) as isize - g.pad_left as isize;
                            if iy < 0 || ix < 0 || iy >= g.in_h as isize || ix >= g.in_w as isize {
                                continue;
                            }
                            let v =
                                input[((b * g.in_h + iy as usize) * g.in_w + ix as usize) * c + ch];
                            if v.is_nan() || (!best.is_nan() && v > best) {
                                best = v;
                            }
                            sum += v;
                            count += 1;
                        }
                    }
                    out[((b * g.out_h + oy) * g.out_w + ox) * c + ch] =
                        if max { best } else { sum / count.max(1) as f32 };
                }
            }
        }
    }
    out
}

/// Direct dense layer: `out[n][u] = bias[u] + Σ_i x[n][i] · w[i][u]`, with
/// `w` in `[in, units]` layout.
pub fn dense(
    input: &[f32],
    batch: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    units: usize,
) -> Vec<f32> {
    let inputs = input.len() / batch.max(1);
    let mut out = vec![0.0f32; batch * units];
    for n in 0..batch {
        for u in 0..units {
            let mut acc = bias.map_or(0.0, |b| b[u]);
            for i in 0..inputs {
                acc += input[n * inputs + i] * w[i * units + u];
            }
            out[n * units + u] = acc;
        }
    }
    out
}
