// The low-resolution passes over the full-resolution image: the area-downsampled copy the network reads
// (hd_downsample) and the fine-detail energy (hd_detail). Compiled once per ISA (see simd.h).
#include "simd.h"

namespace {

// ---------------------------------------------------------------------------------------------
// Area downsampling to S x S, as F.interpolate(mode="area") = adaptive_avg_pool2d: output row i
// averages input rows [floor(i*H/S), ceil((i+1)*H/S)), same for columns, with equal weights.
// When S divides H this is exact box averaging; otherwise neighbouring windows overlap by one row
// (torch's definition, which training used), not fractional box weights.
// Output: float32 HWC [S, S, 3] (the channels-last layout the network runs in).
// ---------------------------------------------------------------------------------------------
template <int F>
static inline vf load_norm(const typename Pix<F>::T* p);
template <>
inline vf load_norm<HWC_F32>(const float* p) { return ld(p); }
template <>
inline vf load_norm<CHW_F32>(const float* p) { return ld(p); }
template <>
inline vf load_norm<HWC_U8>(const uint8_t* p) { return mul(load_u8(p), set1(1.0f / 255.0f)); }
template <>
inline vf load_norm<HWC_U16>(const uint16_t* p) { return mul(load_u16(p), set1(1.0f / 65535.0f)); }

// One row of normalised (and log-encoded if LOG) values into dst: added to it (ADD), or stored.
template <int F, bool LOG, bool ADD>
static inline void encode_into(const typename Pix<F>::T* row, long n, float* dst) {
    typedef typename Pix<F>::T T;
    long k = 0;
    for (; k + L <= n; k += L) {
        vf v = load_norm<F>(row + k);
        if (LOG) v = encode_log(v);
        st(dst + k, ADD ? add(ld(dst + k), v) : v);
    }
    if (k < n) {
        T buf[L];
        float fbuf[L];
        memset(buf, 0, sizeof(buf));
        memcpy(buf, row + k, (n - k) * sizeof(T));
        vf v = load_norm<F>(buf);
        if (LOG) v = encode_log(v);
        st(fbuf, v);
        for (long q = 0; q < n - k; q++) dst[k + q] = ADD ? dst[k + q] + fbuf[q] : fbuf[q];
    }
}

template <int F, bool LOG>
static int downsample(const void* in_, int H, int W, int S, float* out, int threads) {
    typedef typename Pix<F>::T T;
    const T* in = (const T*)in_;
    const bool chw = (F == CHW_F32);
#pragma omp parallel num_threads(threads)
    {
        float* acc = (float*)alloc64(sizeof(float) * (3L * W + L));
#pragma omp for schedule(static)
        for (int i = 0; i < S; i++) {
            long ys = (long)i * H / S, ye = ((long)(i + 1) * H + S - 1) / S;
            memset(acc, 0, sizeof(float) * 3L * W);
            // Vertical pass: column sums over the window's rows (contiguous, vectorised).
            for (long y = ys; y < ye; y++) {
                if (chw) {
                    for (int c = 0; c < 3; c++) encode_into<F, LOG, true>(in + ((long)c * H + y) * W, W, acc + (long)c * W);
                } else {
                    encode_into<F, LOG, true>(in + y * 3L * W, 3L * W, acc);
                }
            }
            // Horizontal pass: window sums of the column sums, each summed in x order. Four windows
            // x three channels run side by side: twelve independent add chains instead of one
            // serial chain per output (that latency was most of this function's time).
            float* orow = out + (long)i * S * 3;
            const long cs = chw ? 1 : 3, ch_stride = chw ? W : 1;  // acc index = x*cs + c*ch_stride
            int j = 0;
            for (; j + 4 <= S; j += 4) {
                long xs[4], n[4], nmax = 0;
                float sum[4][3] = {};
                for (int q = 0; q < 4; q++) {
                    xs[q] = (long)(j + q) * W / S;
                    n[q] = ((long)(j + q + 1) * W + S - 1) / S - xs[q];
                    nmax = n[q] > nmax ? n[q] : nmax;
                }
                for (long t = 0; t < nmax; t++)
                    for (int q = 0; q < 4; q++)
                        if (t < n[q])
                            for (int c = 0; c < 3; c++) sum[q][c] += acc[(xs[q] + t) * cs + c * ch_stride];
                for (int q = 0; q < 4; q++) {
                    float cnt = (float)((ye - ys) * n[q]);
                    for (int c = 0; c < 3; c++) orow[3 * (j + q) + c] = sum[q][c] / cnt;
                }
            }
            for (; j < S; j++) {
                long xs = (long)j * W / S, xe = ((long)(j + 1) * W + S - 1) / S;
                float cnt = (float)((ye - ys) * (xe - xs));
                for (int c = 0; c < 3; c++) {
                    float sum = 0.0f;
                    for (long x = xs; x < xe; x++) sum += acc[x * cs + c * ch_stride];
                    orow[3 * j + c] = sum / cnt;
                }
            }
        }
        free(acc);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Fine-detail energy (students/hdrnet.py: detail_energy): luminance (mean of the encoded channels),
// minus its 3x3 mean (border windows average their valid pixels only, as avg_pool2d with
// count_include_pad=False), squared, area-averaged to S x S like downsample(), then 4 * sqrt.
// Output: float32 [S, S]. Each output row recomputes the luminance of its window's rows +-1.
// ---------------------------------------------------------------------------------------------
template <int F, bool LOG>
static void lum_row(const typename Pix<F>::T* in, int H, int W, long y, float* tmp, float* lum) {
    if (F == CHW_F32) {
        for (int c = 0; c < 3; c++) encode_into<F, LOG, false>(in + ((long)c * H + y) * W, W, tmp + (long)c * W);
        for (int x = 0; x < W; x++) lum[x] = (tmp[x] + tmp[W + x] + tmp[2L * W + x]) / 3.0f;
    } else {
        encode_into<F, LOG, false>(in + y * 3L * W, 3L * W, tmp);
        for (int x = 0; x < W; x++) lum[x] = (tmp[3 * x] + tmp[3 * x + 1] + tmp[3 * x + 2]) / 3.0f;
    }
}

template <int F, bool LOG>
static int detail(const void* in_, int H, int W, int S, float* out, int threads) {
    typedef typename Pix<F>::T T;
    const T* in = (const T*)in_;
    const long max_rows = (long)H / S + 4;  // window rows + the two neighbours, + rounding slack
#pragma omp parallel num_threads(threads)
    {
        float* tmp = (float*)alloc64(sizeof(float) * (3L * W + L));
        float* lum = (float*)alloc64(sizeof(float) * max_rows * W);
        float* vsum = (float*)alloc64(sizeof(float) * (W + 2));
        float* acc = (float*)alloc64(sizeof(float) * W);
#pragma omp for schedule(static)
        for (int i = 0; i < S; i++) {
            long ys = (long)i * H / S, ye = ((long)(i + 1) * H + S - 1) / S;
            long r0 = ys > 0 ? ys - 1 : 0, r1 = ye < H ? ye + 1 : H;  // luminance rows [r0, r1)
            for (long y = r0; y < r1; y++) lum_row<F, LOG>(in, H, W, y, tmp, lum + (y - r0) * W);
            memset(acc, 0, sizeof(float) * W);
            for (long y = ys; y < ye; y++) {
                long a = y > 0 ? y - 1 : 0, b = y + 1 < H ? y + 1 : H - 1;
                const float vcnt = (float)(b - a + 1);
                const float* la = lum + (a - r0) * W;
                if (b - a == 2) {  // interior row: three rows, a loop the compiler vectorises
                    const float *lm = la + W, *lb = la + 2L * W;
                    for (int x = 0; x < W; x++) vsum[x] = la[x] + lm[x] + lb[x];
                } else {
                    for (int x = 0; x < W; x++) {
                        float v = 0.0f;
                        for (long r = a; r <= b; r++) v += lum[(r - r0) * W + x];
                        vsum[x] = v;
                    }
                }
                const float* l = lum + (y - r0) * W;
                const float inv3 = 1.0f / (vcnt * 3.0f);
                for (int x = 1; x + 1 < W; x++) {  // interior columns: nine pixels
                    float hp = l[x] - (vsum[x - 1] + vsum[x] + vsum[x + 1]) * inv3;
                    acc[x] += hp * hp;
                }
                const int border[2] = {0, W - 1};
                for (int k = 0; k < (W > 1 ? 2 : 1); k++) {  // border columns: the valid pixels only
                    const int x = border[k];
                    int xa = x > 0 ? x - 1 : 0, xb = x + 1 < W ? x + 1 : W - 1;
                    float box = 0.0f;
                    for (int q = xa; q <= xb; q++) box += vsum[q];
                    float hp = l[x] - box / (vcnt * (float)(xb - xa + 1));
                    acc[x] += hp * hp;
                }
            }
            for (int j = 0; j < S; j++) {
                long xs = (long)j * W / S, xe = ((long)(j + 1) * W + S - 1) / S;
                float sum = 0.0f;
                for (long x = xs; x < xe; x++) sum += acc[x];
                float m = sum / (float)((ye - ys) * (xe - xs));
                out[(long)i * S + j] = 4.0f * sqrtf(m > 0.0f ? m : 0.0f);  // hdrnet.DETAIL_SCALE
            }
        }
        free(tmp); free(lum); free(vsum); free(acc);
    }
    return 0;
}

// The two low-res passes (area downsample, fine-detail energy) share one signature, so one dispatch
// picks the instantiation for both: pixel format, then encoding.
struct DownPass {
    template <int F, bool LOG>
    static int run(const void* in, int H, int W, int S, float* out, int t) { return downsample<F, LOG>(in, H, W, S, out, t); }
};
struct DetailPass {
    template <int F, bool LOG>
    static int run(const void* in, int H, int W, int S, float* out, int t) { return detail<F, LOG>(in, H, W, S, out, t); }
};

template <class P, int F>
static int lowres_f(const void* in, int H, int W, int enc, int S, float* out, int threads) {
    return enc ? P::template run<F, true>(in, H, W, S, out, threads) : P::template run<F, false>(in, H, W, S, out, threads);
}

template <class P>
static int lowres_pass(const void* in, int fmt, int H, int W, int enc, int S, float* out, int threads) {
    switch (fmt) {
        case HWC_F32: return lowres_f<P, HWC_F32>(in, H, W, enc, S, out, threads);
        case HWC_U8: return lowres_f<P, HWC_U8>(in, H, W, enc, S, out, threads);
        case HWC_U16: return lowres_f<P, HWC_U16>(in, H, W, enc, S, out, threads);
        case CHW_F32: return lowres_f<P, CHW_F32>(in, H, W, enc, S, out, threads);
    }
    return -1;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Entry points (called by fused.cpp after argument checks).
// ---------------------------------------------------------------------------------------------
extern "C" int HD_CAT(hd_downsample, HD_ISA)(const void* in, int fmt, int H, int W, int enc, int S, float* out, int threads) {
    return lowres_pass<DownPass>(in, fmt, H, W, enc, S, out, threads);
}

extern "C" int HD_CAT(hd_detail, HD_ISA)(const void* in, int fmt, int H, int W, int enc, int S, float* out, int threads) {
    return lowres_pass<DetailPass>(in, fmt, H, W, enc, S, out, threads);
}
