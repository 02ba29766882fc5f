// The bilateral base of a guide_bilateral student: the splat of the image's encoded log luminance into a small
// grid (hd_bilateral_splat; the blur runs in torch) and every pixel's base read back from the blurred grid
// (hd_bilateral_base_map). Compiled once per ISA (see simd.h).
#include "simd.h"
#include "slice_tables.h"

namespace {

// ---------------------------------------------------------------------------------------------
// Bilateral splat (grid.bilateral_splat): each pixel's encoded log luminance e (log_lum_enc) and a unit
// weight go trilinearly into out [2, D, Gh, Gw] at (x, y, e), cell-centred and border-clamped like the
// slice (grid._axis). Threads take rows, each into a grid of its own, summed at the end; within a row the
// (z, x) splat goes into a row buffer (numerator and weight interleaved, so a pixel's eight adds touch four
// pairs), added to the two grid rows with weights (1 - wy, wy). The intensity coordinate is vectorised.
// ---------------------------------------------------------------------------------------------
// The m <= L pixels of a row from column j0 (a tail of fewer than L goes through the zeroed buffer ibuf).
template <int F>
static inline void load_pixels(const typename Pix<F>::T* irow, long plane, int j0, int m, typename Pix<F>::T* ibuf,
                               vf& r, vf& g, vf& b) {
    typedef typename Pix<F>::T T;
    const int ci = Pix<F>::chans_inline;
    if (m == L) {
        Pix<F>::load(irow + (long)j0 * ci, plane, r, g, b);
        return;
    }
    memset(ibuf, 0, sizeof(T) * 3 * L);
    if (F == CHW_F32) {
        for (int c = 0; c < 3; c++) memcpy(ibuf + c * L, irow + c * plane + j0, m * sizeof(T));
    } else {
        memcpy(ibuf, irow + (long)j0 * 3, 3 * m * sizeof(T));
    }
    Pix<F>::load(ibuf, L, r, g, b);
}

struct Ax { int i0, i1; float f; };
static inline Ax axis_of(float c, int size) {  // grid._axis
    if (c < 0.0f) c = 0.0f;
    if (c > (float)(size - 1)) c = (float)(size - 1);
    int i0 = imin_((int)floorf(c), size - 1);
    Ax a = {i0, imin_(i0 + 1, size - 1), c - (float)i0};
    return a;
}

template <int F>
static int splat(const void* in_, int H, int W, int D, int Gh, int Gw, float* out, int threads) {
    typedef typename Pix<F>::T T;
    const T* in = (const T*)in_;
    const int ci = Pix<F>::chans_inline;
    const long plane = (F == CHW_F32) ? (long)H * W : 0;
    const long n = 2L * D * Gh * Gw, nrow = 2L * D * Gw, plane_g = (long)D * Gh * Gw;
    Ax* xa = (Ax*)malloc(sizeof(Ax) * W);
    if (!xa) return -3;
    for (int j = 0; j < W; j++) xa[j] = axis_of((j + 0.5f) * ((float)Gw / (float)W) - 0.5f, Gw);
    memset(out, 0, sizeof(float) * n);
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        float* acc = (float*)calloc(n, sizeof(float));
        float* rowb = (float*)malloc(sizeof(float) * nrow);
        if (!acc || !rowb) failed = 1;
        float ebuf[L], zbuf[L], fbuf[L];
        T ibuf[3 * L];
#pragma omp for schedule(static)
        for (int i = 0; i < H; i++) {
            if (!acc || !rowb) continue;
            memset(rowb, 0, sizeof(float) * nrow);
            const T* irow = in + (long)i * W * ci;
            for (int j0 = 0; j0 < W; j0 += L) {
                int m = imin_(L, W - j0);
                vf r, g, b;
                load_pixels<F>(irow, plane, j0, m, ibuf, r, g, b);
                vf e = log_lum_enc(r, g, b);  // grid._axis on e * D - 0.5, as axis_of does
                vf gz = vmin(vmax(fma_(e, set1((float)D), set1(-0.5f)), set1(0.0f)), set1((float)(D - 1)));
                vf z0 = to_f(imin(floor_i(gz), iset1(D - 1)));
                st(ebuf, e); st(zbuf, z0); st(fbuf, sub(gz, z0));
                for (int k = 0; k < m; k++) {
                    const float e = ebuf[k], w1 = fbuf[k], w0 = 1.0f - w1;
                    const int z0 = (int)zbuf[k], z1 = z0 + (z0 < D - 1);
                    const Ax x = xa[j0 + k];
                    const float v0 = 1.0f - x.f, v1 = x.f;
                    float* p00 = rowb + 2 * ((long)z0 * Gw + x.i0);
                    float* p01 = rowb + 2 * ((long)z0 * Gw + x.i1);
                    float* p10 = rowb + 2 * ((long)z1 * Gw + x.i0);
                    float* p11 = rowb + 2 * ((long)z1 * Gw + x.i1);
                    float a = w0 * v0, bb = w0 * v1, c = w1 * v0, dd = w1 * v1;
                    p00[0] += e * a; p00[1] += a;
                    p01[0] += e * bb; p01[1] += bb;
                    p10[0] += e * c; p10[1] += c;
                    p11[0] += e * dd; p11[1] += dd;
                }
            }
            const Ax y = axis_of((i + 0.5f) * ((float)Gh / (float)H) - 0.5f, Gh);
            const float u0 = 1.0f - y.f, u1 = y.f;
            for (long z = 0; z < D; z++) {
                const float* rb = rowb + 2 * z * Gw;
                float* a0 = acc + (z * Gh + y.i0) * Gw;
                float* a1 = acc + (z * Gh + y.i1) * Gw;
                for (int x = 0; x < Gw; x++) {
                    a0[x] += u0 * rb[2 * x]; a1[x] += u1 * rb[2 * x];
                    a0[plane_g + x] += u0 * rb[2 * x + 1]; a1[plane_g + x] += u1 * rb[2 * x + 1];
                }
            }
        }
        if (acc && rowb) {
#pragma omp critical
            for (long k = 0; k < n; k++) out[k] += acc[k];
        }
        free(acc);
        free(rowb);
    }
    free(xa);
    return failed ? -3 : 0;
}

// Every pixel's base (grid.bilateral_slice of the blurred grid) and encoded log luminance, as the slice kernel
// computes them for the guide: float32 [H, W] each (white_base_percentile picks its pixels from them).
template <int F>
static int base_map(const void* in_, const Bilateral& B, float* base, float* lum, int threads) {
    typedef typename Pix<F>::T T;
    const T* in = (const T*)in_;
    const int H = B.d.H, W = B.d.W;
    const int ci = Pix<F>::chans_inline;
    const long plane = (F == CHW_F32) ? (long)H * W : 0;
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        float* rowT = (float*)alloc64(sizeof(float) * (B.d.per_row + L));
        if (rowT) memset(rowT, 0, sizeof(float) * (B.d.per_row + L));
        else failed = 1;
        int have_y0 = -1;
        float have_wy = -1.0f;
        T ibuf[3 * L];
        float bbuf[L], ebuf[L];
#pragma omp for schedule(static)
        for (int i = 0; i < H; i++) {
            if (!rowT) continue;
            row_tables(B.d, B.T_all, i, rowT, have_y0, have_wy);
            const T* irow = in + (long)i * W * ci;
            for (int j0 = 0; j0 < W; j0 += L) {
                int m = imin_(L, W - j0);
                vf r, g, b;
                load_pixels<F>(irow, plane, j0, m, ibuf, r, g, b);
                vf le = log_lum_enc(r, g, b);
                st(ebuf, le);
                st(bbuf, bilateral_at(B, rowT, j0, le));
                memcpy(base + (long)i * W + j0, bbuf, m * sizeof(float));
                memcpy(lum + (long)i * W + j0, ebuf, m * sizeof(float));
            }
        }
        free(rowT);
    }
    return failed ? -3 : 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Entry points (called by fused.cpp after argument checks).
// ---------------------------------------------------------------------------------------------
extern "C" int HD_CAT(hd_bilateral_base_map, HD_ISA)(const void* in, int fmt, int H, int W, const float* bgrid,
                                                     int bD, int bGh, int bGw, float* base, float* lum,
                                                     int threads) {
    Bilateral B;
    if (bilateral_setup(B, H, W, bgrid, bD, bGh, bGw)) return -3;
    int rc = -1;
    switch (fmt) {
        case HWC_F32: rc = base_map<HWC_F32>(in, B, base, lum, threads); break;
        case HWC_U8: rc = base_map<HWC_U8>(in, B, base, lum, threads); break;
        case HWC_U16: rc = base_map<HWC_U16>(in, B, base, lum, threads); break;
        case CHW_F32: rc = base_map<CHW_F32>(in, B, base, lum, threads); break;
    }
    bilateral_free(B);
    return rc;
}

extern "C" int HD_CAT(hd_bilateral_splat, HD_ISA)(const void* in, int fmt, int H, int W, int D, int Gh, int Gw,
                                                  float* out, int threads) {
    switch (fmt) {
        case HWC_F32: return splat<HWC_F32>(in, H, W, D, Gh, Gw, out, threads);
        case HWC_U8: return splat<HWC_U8>(in, H, W, D, Gh, Gw, out, threads);
        case HWC_U16: return splat<HWC_U16>(in, H, W, D, Gh, Gw, out, threads);
        case CHW_F32: return splat<CHW_F32>(in, H, W, D, Gh, Gw, out, threads);
    }
    return -1;
}
