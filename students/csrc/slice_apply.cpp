// The fused full-resolution pass (hd_slice_apply): per pixel, load -> encode -> guide -> trilinear slice ->
// 3x4 affine apply -> output decoding -> store. Compiled once per ISA (see simd.h).
#include "simd.h"
#include "slice_tables.h"

namespace {

// "srgb_log" output decoding (hdrnet.decode_output): radiance = 2^((LOG_MIN + LOG_MAX) * y - LOG_MIN),
// clipped to [0, 1], sRGB-encoded. The sRGB power needs no logarithm: r^(1/2.4) = 2^(t / 2.4).
// exp2_: 2^t = 2^n * 2^(f - 1/2) * sqrt(2), n = floor(t), the Taylor series of 2^g, |g| <= 1/2, to g^6
// (relative error ~1e-7); t is clamped to [-126, 0] first, so 2^n is a normal float.
static inline vf exp2_(vf t) {
    t = vmin(vmax(t, set1(-126.0f)), set1(0.0f));
    vi n = floor_i(t);
    vf g = sub(sub(t, to_f(n)), set1(0.5f));
    const float l = 0.6931471805599453f;  // ln 2
    vf p = fma_(g, set1(l * l * l * l * l * l / 720.0f), set1(l * l * l * l * l / 120.0f));
    p = fma_(p, g, set1(l * l * l * l / 24.0f));
    p = fma_(p, g, set1(l * l * l / 6.0f));
    p = fma_(p, g, set1(l * l / 2.0f));
    p = fma_(p, g, set1(l));
    p = fma_(p, g, set1(1.0f));
    vf scale = as_f(sll23(iadd(n, iset1(127))));
    return mul(mul(p, set1(1.41421356237309515f)), scale);
}

static inline vf decode_srgb_log(vf y, vf white_scale) {
    vf t = fma_(y, set1(LOG_MIN + LOG_MAX), set1(-LOG_MIN));  // log2 radiance; >= 0 means clipped to 1
    const float toe = -8.319252f;                              // log2(0.0031308), sRGB's linear segment
    vf lin = mul(exp2_(t), set1(12.92f));
    vf pw = fma_(exp2_(mul(t, set1(1.0f / 2.4f))), set1(1.055f), set1(-0.055f));
    vf v = sel_gt(t, set1(toe), pw, lin);
    return vmin(mul(v, white_scale), set1(1.0f));
}

// ---------------------------------------------------------------------------------------------
// Guide map parameters (HDRNet's guidance: 3x3 colour transform, per-channel curves, weighted sum).
// ---------------------------------------------------------------------------------------------
const int MAX_KNOTS = 256;
struct Guide {
    float ccm[9], ccm_bias[3], mix[3], mix_bias;
    int nk[3];  // knots kept per channel: a knot with slope exactly 0 adds +0 and is dropped (exact)
    float shift[3][MAX_KNOTS], slope[3][MAX_KNOTS];
    // The same curves as piecewise-linear segments (AVX-512 path, up to 16 knots per channel): with
    // the knots sorted, curve(v) = seg_a[m] * v + seg_b[m] where m = number of knots below v. A
    // 4-step binary search over thr and two 32-entry permutes replace 16 relu terms per channel.
    int pl;
    float thr[3][16];                  // sorted shifts, padded with +inf
    float seg_a[3][32], seg_b[3][32];  // segment m: sum of slopes below, -sum of slope*shift below
};

// Packed layout from fused.cpp: ccm(9) ccm_bias(3) mix(3) mix_bias(1) shifts(3K) slopes(3K).
static void unpack_guide(const float* p, int K, Guide& G) {
    memcpy(G.ccm, p, 9 * 4);
    memcpy(G.ccm_bias, p + 9, 3 * 4);
    memcpy(G.mix, p + 12, 3 * 4);
    G.mix_bias = p[15];
    const float* sh = p + 16;
    const float* sl = p + 16 + 3 * K;
    for (int c = 0; c < 3; c++) {
        int n = 0;
        for (int k = 0; k < K; k++)
            if (sl[c * K + k] != 0.0f) {
                G.shift[c][n] = sh[c * K + k];
                G.slope[c][n] = sl[c * K + k];
                n++;
            }
        G.nk[c] = n;
    }
    G.pl = G.nk[0] <= 16 && G.nk[1] <= 16 && G.nk[2] <= 16;
    if (!G.pl) return;
    for (int c = 0; c < 3; c++) {
        int n = G.nk[c], order[16];
        for (int k = 0; k < n; k++) order[k] = k;
        for (int k = 1; k < n; k++)  // insertion sort by shift (n <= 16)
            for (int q = k; q > 0 && G.shift[c][order[q]] < G.shift[c][order[q - 1]]; q--) {
                int t = order[q]; order[q] = order[q - 1]; order[q - 1] = t;
            }
        memset(G.seg_a[c], 0, sizeof(G.seg_a[c]));
        memset(G.seg_b[c], 0, sizeof(G.seg_b[c]));
        double a = 0.0, b = 0.0;
        for (int k = 0; k < 16; k++) G.thr[c][k] = k < n ? G.shift[c][order[k]] : INFINITY;
        for (int k = 0; k < n; k++) {
            a += G.slope[c][order[k]];
            b -= (double)G.slope[c][order[k]] * G.shift[c][order[k]];
            G.seg_a[c][k + 1] = (float)a;
            G.seg_b[c][k + 1] = (float)b;
        }
    }
}

static inline vf curve(const float* shift, const float* slope, int n, vf v) {
    vf acc = set1(0.0f);
    const vf zero = set1(0.0f);
    for (int k = 0; k < n; k++) acc = fma_(set1(slope[k]), vmax(sub(v, set1(shift[k])), zero), acc);
    return acc;
}

#if defined(__AVX512F__)
static inline vf curve_pl(const float* thr, const float* seg_a, const float* seg_b, vf v) {
    const vf t = ld(thr);
    vi m = iset1(0);
    for (int step = 8; step >= 1; step /= 2) {  // m = number of thresholds strictly below v (NaN: 0)
        vi cand = iadd(m, iset1(step));
        vf tv = _mm512_permutexvar_ps(isub(cand, iset1(1)), t);
        m = _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(v, tv, _CMP_GT_OQ), m, cand);
    }
    // Four halvings reach 0..15 (thr[15] untested); one more step makes the count 0..16.
    m = _mm512_mask_add_epi32(m, _mm512_cmp_ps_mask(v, _mm512_permutexvar_ps(m, t), _CMP_GT_OQ), m, iset1(1));
    vf a = _mm512_permutex2var_ps(ld(seg_a), m, ld(seg_a + 16));
    vf b = _mm512_permutex2var_ps(ld(seg_b), m, ld(seg_b + 16));
    return fma_(a, v, b);
}
#endif

// Guidance intensity in [0, 1] (grid.guide_map).
static inline vf guide_value(const Guide& G, vf r, vf g, vf b) {
    vf out = set1(0.0f);
    for (int c = 0; c < 3; c++) {
        vf v = fma_(set1(G.ccm[3 * c + 2]), b, fma_(set1(G.ccm[3 * c + 1]), g, mul(set1(G.ccm[3 * c]), r)));
        v = add(v, set1(G.ccm_bias[c]));
#if defined(__AVX512F__)
        if (G.pl) {
            out = fma_(curve_pl(G.thr[c], G.seg_a[c], G.seg_b[c], v), set1(G.mix[c]), out);
            continue;
        }
#endif
        out = fma_(curve(G.shift[c], G.slope[c], G.nk[c], v), set1(G.mix[c]), out);
    }
    out = add(out, set1(G.mix_bias));
    return vmin(vmax(out, set1(0.0f)), set1(1.0f));
}

// One block of L pixels: load -> encode -> guide -> slice -> apply -> store.
template <int F, bool LOG, bool GATHER>
static inline void block(const typename Pix<F>::T* ip, typename Pix<F>::T* op, long plane, int j0, const float* rowT,
                         const Dims& d, const Columns& cols, const Guide& G, const Bilateral* bl, const float* rowTb) {
    vf r, g, b;
    Pix<F>::load(ip, plane, r, g, b);
    vf gd;
    if (LOG && (d.guide_luma || bl)) {  // uniform over the call, like out_enc
        vf le = log_lum_enc(r, g, b);
        r = encode_log(r); g = encode_log(g); b = encode_log(b);
        // guide_luma: the guide reads the channels shifted so that their mean is the log luminance (or, with
        // guide_bilateral, its base); guide_bilateral alone: shifted so that the luminance is the base.
        vf target = bl ? bilateral_at(*bl, rowTb, j0, le) : le;
        vf shift = sub(target, d.guide_luma ? mul(add(add(r, g), b), set1(1.0f / 3.0f)) : le);
        gd = guide_value(G, add(r, shift), add(g, shift), add(b, shift));
    } else {
        if (LOG) { r = encode_log(r); g = encode_log(g); b = encode_log(b); }
        gd = guide_value(G, r, g, b);
    }
    // The guide's intensity coordinate gz = guide * D - 0.5 (clamped to the border).
    vf gz = vmin(vmax(fma_(gd, set1((float)d.D), set1(-0.5f)), set1(0.0f)), set1((float)(d.D - 1)));
    vi z0 = imin(floor_i(gz), iset1(d.nint - 1));
    vf wz = sub(gz, to_f(z0));
    vf wx = ld(cols.wx + j0);
    // Slice: the block may straddle x-spans; later spans overwrite the lanes at and after their start.
    const int TL = d.TL;
    const long span_floats = 12L * 4 * TL;
    int s0 = cols.span[j0], s1 = cols.span[j0 + L - 1];
    vf A[12];
    slice<GATHER>(A, rowT + s0 * span_floats, TL, z0, wx, wz);
    for (int s = s0 + 1; s <= s1; s++) {
        vf B[12];
        slice<GATHER>(B, rowT + s * span_floats, TL, z0, wx, wz);
        int a = cols.span_start[s] - j0;
        for (int c = 0; c < 12; c++) A[c] = blend_range(A[c], B[c], a, L);
    }
    // Apply the per-pixel 3x4 affine transform to the (encoded) input.
    vf o[3];
    for (int c = 0; c < 3; c++) o[c] = fma_(A[4 * c + 2], b, fma_(A[4 * c + 1], g, fma_(A[4 * c], r, A[4 * c + 3])));
    if (d.out_enc) {  // uniform over the call: a predictable branch, not a template copy per format
        vf ws = set1(d.out_scale);
        for (int c = 0; c < 3; c++) o[c] = decode_srgb_log(o[c], ws);
    }
    Pix<F>::store(op, plane, o[0], o[1], o[2]);
}

template <int F, bool LOG, bool GATHER>
static int run(const void* in_, void* out_, const Dims& d, const float* grid, const Guide& G, const Bilateral* bl,
               int threads) {
    typedef typename Pix<F>::T T;
    const T* in = (const T*)in_;
    T* out = (T*)out_;
    const int H = d.H, W = d.W;
    const int ci = Pix<F>::chans_inline;  // elements per pixel within a row (3 for HWC, 1 for CHW)
    const long plane = (F == CHW_F32) ? (long)H * W : 0;

    float* T_all = (float*)alloc64(sizeof(float) * d.Gh * d.per_row);
    Columns cols;
    cols.span = (int*)alloc64(sizeof(int) * (W + L));
    cols.wx = (float*)alloc64(sizeof(float) * (W + L));
    cols.span_start = (int*)alloc64(sizeof(int) * (d.nspan + 2));
    if (!T_all || !cols.span || !cols.wx || !cols.span_start) {
        free(T_all); free(cols.span); free(cols.wx); free(cols.span_start);
        return -3;
    }
    build_tables(grid, d, T_all);
    fill_columns(cols, W, d.Gw, d.nspan);

    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        float* rowT = (float*)alloc64(sizeof(float) * (d.per_row + L));  // + L: permute loads past the last table
        if (rowT) memset(rowT, 0, sizeof(float) * (d.per_row + L));
        else failed = 1;
        float* rowTb = nullptr;
        if (bl) {
            rowTb = (float*)alloc64(sizeof(float) * (bl->d.per_row + L));
            if (rowTb) memset(rowTb, 0, sizeof(float) * (bl->d.per_row + L));
            else failed = 1;
        }
        int have_y0 = -1, have_y0b = -1;
        float have_wy = -1.0f, have_wyb = -1.0f;
        T ibuf[3 * L], obuf[3 * L];  // tail block (fewer than L pixels left in the row)
#pragma omp for schedule(static)
        for (int i = 0; i < H; i++) {
            if (!rowT || (bl && !rowTb)) continue;
            row_tables(d, T_all, i, rowT, have_y0, have_wy);
            if (bl) row_tables(bl->d, bl->T_all, i, rowTb, have_y0b, have_wyb);
            const T* irow = in + (long)i * W * ci;
            T* orow = out + (long)i * W * ci;
            int j0 = 0;
            for (; j0 + L <= W; j0 += L) block<F, LOG, GATHER>(irow + (long)j0 * ci, orow + (long)j0 * ci, plane, j0, rowT, d, cols, G, bl, rowTb);
            int n = W - j0;
            if (n > 0) {
                memset(ibuf, 0, sizeof(ibuf));
                if (F == CHW_F32) {
                    for (int c = 0; c < 3; c++) memcpy(ibuf + c * L, irow + c * plane + j0, n * sizeof(T));
                } else {
                    memcpy(ibuf, irow + (long)j0 * 3, 3 * n * sizeof(T));
                }
                block<F, LOG, GATHER>(ibuf, obuf, L, j0, rowT, d, cols, G, bl, rowTb);
                if (F == CHW_F32) {
                    for (int c = 0; c < 3; c++) memcpy(orow + c * plane + j0, obuf + c * L, n * sizeof(T));
                } else {
                    memcpy(orow + (long)j0 * 3, obuf, 3 * n * sizeof(T));
                }
            }
        }
        free(rowT);
        free(rowTb);
    }
    free(T_all); free(cols.span); free(cols.wx); free(cols.span_start);
    return failed ? -3 : 0;
}

template <int F>
static int run_f(const void* in, void* out, const Dims& d, const float* grid, const Guide& G, const Bilateral* bl,
                 int enc, int threads) {
    bool gather = d.nint > L;
    if (enc) return gather ? run<F, true, true>(in, out, d, grid, G, bl, threads) : run<F, true, false>(in, out, d, grid, G, bl, threads);
    return gather ? run<F, false, true>(in, out, d, grid, G, bl, threads) : run<F, false, false>(in, out, d, grid, G, bl, threads);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Entry points (called by fused.cpp after argument checks).
// ---------------------------------------------------------------------------------------------
extern "C" int HD_CAT(hd_slice_apply, HD_ISA)(const void* in, void* out, int fmt, int H, int W, const float* grid, int D,
                                              int Gh, int Gw, const float* guide_packed, int K, int enc, int out_enc,
                                              float out_scale, const float* bgrid, int bD, int bGh, int bGw,
                                              int threads) {
    if (K > MAX_KNOTS) return -2;
    Dims d = make_dims(H, W, D, Gh, Gw, 12);
    d.out_enc = out_enc;
    d.out_scale = out_scale;
    d.guide_luma = enc == 2;
    Bilateral B, *bl = nullptr;
    if (bgrid) {  // guide_bilateral: tables and columns of the base grid [2, bD, bGh, bGw]
        if (bilateral_setup(B, H, W, bgrid, bD, bGh, bGw)) return -3;
        bl = &B;
    }
    Guide* G = (Guide*)malloc(sizeof(Guide));
    int rc = -3;
    if (G) {
        unpack_guide(guide_packed, K, *G);
        rc = -1;
        switch (fmt) {
            case HWC_F32: rc = run_f<HWC_F32>(in, out, d, grid, *G, bl, enc != 0, threads); break;
            case HWC_U8: rc = run_f<HWC_U8>(in, out, d, grid, *G, bl, enc != 0, threads); break;
            case HWC_U16: rc = run_f<HWC_U16>(in, out, d, grid, *G, bl, enc != 0, threads); break;
            case CHW_F32: rc = run_f<CHW_F32>(in, out, d, grid, *G, bl, enc != 0, threads); break;
        }
    }
    free(G);
    if (bl) bilateral_free(B);
    return rc;
}

extern "C" int HD_CAT(hd_lanes, HD_ISA)() { return L; }

