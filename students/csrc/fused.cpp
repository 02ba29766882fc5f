// C ABI of the fused HDRNet inference library: argument checks and run-time ISA dispatch.
//
// The kernels (slice_apply.cpp, lowres.cpp, bilateral.cpp, around the vector layer simd.h) are compiled
// once per instruction set; this file is compiled for the baseline CPU and picks the best variant the
// running CPU supports (or the one named by hd_set_isa / students.fused, for tests and benchmarks). No torch headers: students/fused.py
// loads the library with ctypes and passes raw pointers of numpy arrays / torch tensors.
#include <stdint.h>
#include <string.h>
#include <omp.h>

#define DECLARE_ISA(isa)                                                                                    \
    extern "C" int hd_slice_apply_##isa(const void*, void*, int, int, int, const float*, int, int, int,   \
                                        const float*, int, int, int, float, const float*, int, int, int, int); \
    extern "C" int hd_bilateral_splat_##isa(const void*, int, int, int, int, int, int, float*, int);       \
    extern "C" int hd_bilateral_base_map_##isa(const void*, int, int, int, const float*, int, int, int,    \
                                               float*, float*, int);                                       \
    extern "C" int hd_downsample_##isa(const void*, int, int, int, int, int, float*, int);                 \
    extern "C" int hd_detail_##isa(const void*, int, int, int, int, int, float*, int);                     \
    extern "C" int hd_lanes_##isa();

DECLARE_ISA(scalar)
#ifdef HD_HAVE_AVX2
DECLARE_ISA(avx2)
#endif
#ifdef HD_HAVE_AVX512
DECLARE_ISA(avx512)
#endif

namespace {

typedef int (*slice_fn)(const void*, void*, int, int, int, const float*, int, int, int, const float*, int, int, int,
                        float, const float*, int, int, int, int);
typedef int (*splat_fn)(const void*, int, int, int, int, int, int, float*, int);
typedef int (*base_map_fn)(const void*, int, int, int, const float*, int, int, int, float*, float*, int);
typedef int (*down_fn)(const void*, int, int, int, int, int, float*, int);
typedef int (*lanes_fn)();

struct Variant {
    const char* name;
    slice_fn slice;
    down_fn down;
    down_fn detail;
    lanes_fn lanes;
    splat_fn splat;
    base_map_fn base_map;
};

// Best first.
const Variant VARIANTS[] = {
#ifdef HD_HAVE_AVX512
    {"avx512", hd_slice_apply_avx512, hd_downsample_avx512, hd_detail_avx512, hd_lanes_avx512, hd_bilateral_splat_avx512, hd_bilateral_base_map_avx512},
#endif
#ifdef HD_HAVE_AVX2
    {"avx2", hd_slice_apply_avx2, hd_downsample_avx2, hd_detail_avx2, hd_lanes_avx2, hd_bilateral_splat_avx2, hd_bilateral_base_map_avx2},
#endif
    {"scalar", hd_slice_apply_scalar, hd_downsample_scalar, hd_detail_scalar, hd_lanes_scalar, hd_bilateral_splat_scalar, hd_bilateral_base_map_scalar},
};
const int N_VARIANTS = sizeof(VARIANTS) / sizeof(VARIANTS[0]);

bool cpu_supports(const char* name) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (!strcmp(name, "avx512"))
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (!strcmp(name, "avx2")) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return !strcmp(name, "scalar");
}

const Variant* chosen = nullptr;

const Variant* best() {
    if (!chosen)
        for (int i = 0; i < N_VARIANTS; i++)
            if (cpu_supports(VARIANTS[i].name)) { chosen = &VARIANTS[i]; break; }
    return chosen;
}

int n_threads(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

}  // namespace

extern "C" {

// ABI version: students/fused.py refuses a library whose version differs.
int hd_abi_version() { return 8; }

// Name of the kernel variant in use: "avx512", "avx2" or "scalar".
const char* hd_isa() { return best()->name; }

// Force a variant ("auto" = best supported). Returns 0, or -1 if unknown / not supported here.
int hd_set_isa(const char* name) {
    if (!strcmp(name, "auto")) { chosen = nullptr; best(); return 0; }
    for (int i = 0; i < N_VARIANTS; i++)
        if (!strcmp(VARIANTS[i].name, name)) {
            if (!cpu_supports(name)) return -1;
            chosen = &VARIANTS[i];
            return 0;
        }
    return -1;
}

// Comma-separated variants compiled into this library.
const char* hd_compiled_isas() {
    return ""
#ifdef HD_HAVE_AVX512
           "avx512,"
#endif
#ifdef HD_HAVE_AVX2
           "avx2,"
#endif
           "scalar";
}

// Fused guide + slice + apply over a full-resolution image.
//   in/out: fmt 0 = HWC float32, 1 = HWC uint8, 2 = HWC uint16, 3 = CHW float32; contiguous, H x W.
//   grid: float32 [12, D, Gh, Gw] contiguous. guide: ccm(9) ccm_bias(3) mix(3) mix_bias(1) shifts(3K) slopes(3K).
//   enc: 0 = none, 1 = log, 2 = log with the guide on log luminance (guide_luma). out_enc: 0 = none; 1 = srgb_log (decode, times out_scale > 0, at most 1).
//   bgrid: null, or (guide_bilateral, enc 1 or 2) the blurred bilateral grid float32 [2, bD, bGh, bGw] of the image
//   (numerator, weight; grid.bilateral_base): the guide then reads the pixel's log luminance replaced by its base.
//   threads <= 0: OpenMP default.
// Returns 0 on success, < 0 on bad arguments (-1) or too many knots (-2) or out of memory (-3).
int hd_slice_apply(const void* in, void* out, int fmt, int H, int W, const float* grid, int D, int Gh, int Gw,
                   const float* guide, int K, int enc, int out_enc, float out_scale, const float* bgrid, int bD,
                   int bGh, int bGw, int threads) {
    if (!in || !out || !grid || !guide || fmt < 0 || fmt > 3 || H < 1 || W < 1 || D < 1 || Gh < 1 || Gw < 1 ||
        K < 0 || enc < 0 || enc > 2 || (out_enc != 0 && out_enc != 1) || !(out_scale > 0.0f) ||
        (bgrid && (enc == 0 || bD < 1 || bGh < 1 || bGw < 1)))
        return -1;
    int t = n_threads(threads);
    if (t > H) t = H;
    return best()->slice(in, out, fmt, H, W, grid, D, Gh, Gw, guide, K, enc, out_enc, out_scale, bgrid, bD, bGh, bGw, t);
}

// Bilateral splat (grid.bilateral_splat) of the image's encoded log luminance: out float32 [2, D, Gh, Gw]
// (numerator, weight), overwritten.
int hd_bilateral_splat(const void* in, int fmt, int H, int W, int D, int Gh, int Gw, float* out, int threads) {
    if (!in || !out || fmt < 0 || fmt > 3 || H < 1 || W < 1 || D < 1 || Gh < 1 || Gw < 1) return -1;
    int t = n_threads(threads);
    if (t > H) t = H;
    return best()->splat(in, fmt, H, W, D, Gh, Gw, out, t);
}

// Area (adaptive average pool) downsample to S x S; out: float32 HWC [S, S, 3]. Needs H, W >= S.
int hd_downsample(const void* in, int fmt, int H, int W, int enc, int S, float* out, int threads) {
    if (!in || !out || fmt < 0 || fmt > 3 || S < 1 || H < S || W < S || (enc != 0 && enc != 1)) return -1;
    int t = n_threads(threads);
    if (t > S) t = S;
    return best()->down(in, fmt, H, W, enc, S, out, t);
}

// Fine-detail energy (hdrnet.detail_energy) at S x S; out: float32 [S, S]. Needs H, W >= S.
int hd_detail(const void* in, int fmt, int H, int W, int enc, int S, float* out, int threads) {
    if (!in || !out || fmt < 0 || fmt > 3 || S < 1 || H < S || W < S || (enc != 0 && enc != 1)) return -1;
    int t = n_threads(threads);
    if (t > S) t = S;
    return best()->detail(in, fmt, H, W, enc, S, out, t);
}

// Every pixel's base and encoded log luminance (the slice kernel's, for the guide) from the blurred bilateral
// grid float32 [2, D, Gh, Gw]: base, lum float32 [H, W].
int hd_bilateral_base_map(const void* in, int fmt, int H, int W, const float* bgrid, int D, int Gh, int Gw,
                          float* base, float* lum, int threads) {
    if (!in || !bgrid || !base || !lum || fmt < 0 || fmt > 3 || H < 1 || W < 1 || D < 1 || Gh < 1 || Gw < 1)
        return -1;
    int t = n_threads(threads);
    if (t > H) t = H;
    return best()->base_map(in, fmt, H, W, bgrid, D, Gh, Gw, base, lum, t);
}

int hd_lanes() { return best()->lanes(); }

}  // extern "C"
