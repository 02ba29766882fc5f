// Fused HDRNet inference kernels, written once and compiled once per instruction set.
//
// students/build.py compiles this file several times, each with its own -m flags and
// -DHD_ISA=<name> (avx512, avx2, scalar); students/csrc/fused.cpp picks one at run time with
// __builtin_cpu_supports. Everything here lives in an anonymous namespace (internal linkage) and
// uses no std:: templates, so no AVX-512 copy of an inline function can be picked by the linker
// for code that runs on a CPU without it. Only the two extern "C" entry points, suffixed with the
// ISA name, are visible.
//
// Conventions follow students/grid.py (the differentiable torch path) exactly:
//   grid [12, D, Gh, Gw], row-major 3x4 affine per cell; cell-centred coordinates
//   gx = (j + 0.5) * Gw / W - 0.5 (same for y), gz = guide * D - 0.5, all clamped to the border;
//   guide = clamp(sum_c mix_c * curve_c((ccm @ x + ccm_bias)_c) + mix_bias, 0, 1),
//   curve_c(v) = sum_k slope_ck * relu(v - shift_ck); output_c = A[c,:3] . x + A[c,3].
//   "log" encoding: x <- clamp((log2(max(x,0) + 2^-20) + 20) / 20, 0, 1), applied before everything.
//   "log_luma" (hdrnet.luma_guide_input): the "log" encoding, and the guide reads x - mean_c(x) + the encoded
//   log of the Rec. 709 luminance of the decoded pixel, min(max(x,0) + 2^-20, 1).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <omp.h>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#ifndef HD_ISA
#error "compile with -DHD_ISA=avx512|avx2|scalar"
#endif
#define HD_CAT2(a, b) a##_##b
#define HD_CAT(a, b) HD_CAT2(a, b)

namespace {

// Layout / dtype codes shared with fused.cpp and students/fused.py.
enum Format { HWC_F32 = 0, HWC_U8 = 1, HWC_U16 = 2, CHW_F32 = 3 };

const float LOG_MIN = 20.0f, LOG_MAX = 0.0f;  // students/hdrnet.py: LOG_MIN, LOG_MAX

static inline int imin_(int a, int b) { return a < b ? a : b; }
static inline int imax_(int a, int b) { return a > b ? a : b; }

// ---------------------------------------------------------------------------------------------
// A tiny vector layer: vf (float lanes), vi (int32 lanes), L lanes. One section per ISA.
// ---------------------------------------------------------------------------------------------
#if defined(__AVX512F__)
const int L = 16;
typedef __m512 vf;
typedef __m512i vi;
static inline vf ld(const float* p) { return _mm512_loadu_ps(p); }
static inline void st(float* p, vf v) { _mm512_storeu_ps(p, v); }
static inline vf set1(float a) { return _mm512_set1_ps(a); }
static inline vi iset1(int a) { return _mm512_set1_epi32(a); }
static inline vf add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf div_(vf a, vf b) { return _mm512_div_ps(a, b); }
static inline vf fma_(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }  // a*b+c
static inline vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf vmin(vf a, vf b) { return _mm512_min_ps(a, b); }
static inline vi floor_i(vf a) { return _mm512_cvt_roundps_epi32(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
static inline vi round_i(vf a) { return _mm512_cvtps_epi32(a); }  // nearest, ties to even
static inline vf to_f(vi a) { return _mm512_cvtepi32_ps(a); }
static inline vi imin(vi a, vi b) { return _mm512_min_epi32(a, b); }
static inline vi as_i(vf a) { return _mm512_castps_si512(a); }
static inline vf as_f(vi a) { return _mm512_castsi512_ps(a); }
static inline vi iand(vi a, vi b) { return _mm512_and_si512(a, b); }
static inline vi ior(vi a, vi b) { return _mm512_or_si512(a, b); }
static inline vi isub(vi a, vi b) { return _mm512_sub_epi32(a, b); }
static inline vi iadd(vi a, vi b) { return _mm512_add_epi32(a, b); }
static inline vi srl23(vi a) { return _mm512_srli_epi32(a, 23); }
static inline vi sll23(vi a) { return _mm512_slli_epi32(a, 23); }
// where(a > b, x, y)
static inline vf sel_gt(vf a, vf b, vf x, vf y) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), y, x); }
static inline vi isel_gt(vf a, vf b, vi x, vi y) { return _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), y, x); }
// Table lookup t[idx] for a table of L floats: one in-register permute.
static inline vf lookup_perm(const float* t, vi idx) { return _mm512_permutexvar_ps(idx, _mm512_loadu_ps(t)); }
static inline vf lookup_gather(const float* t, vi idx) { return _mm512_i32gather_ps(idx, t, 4); }
// Lanes [a, b) from nw, the rest from old.
static inline vf blend_range(vf old, vf nw, int a, int b) {
    __mmask16 m = (__mmask16)(((1u << b) - 1u) & ~((1u << a) - 1u));
    return _mm512_mask_blend_ps(m, old, nw);
}
static inline vf load_u8(const uint8_t* p) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)p))); }
static inline vf load_u16(const uint16_t* p) { return _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p))); }
static inline void store_u8(uint8_t* p, vi v) { _mm_storeu_si128((__m128i*)p, _mm512_cvtusepi32_epi8(v)); }
static inline void store_u16(uint16_t* p, vi v) { _mm256_storeu_si256((__m256i*)p, _mm512_cvtusepi32_epi16(v)); }
#elif defined(__AVX2__)
const int L = 8;
typedef __m256 vf;
typedef __m256i vi;
static inline vf ld(const float* p) { return _mm256_loadu_ps(p); }
static inline void st(float* p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf set1(float a) { return _mm256_set1_ps(a); }
static inline vi iset1(int a) { return _mm256_set1_epi32(a); }
static inline vf add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf div_(vf a, vf b) { return _mm256_div_ps(a, b); }
static inline vf fma_(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf vmin(vf a, vf b) { return _mm256_min_ps(a, b); }
static inline vi floor_i(vf a) { return _mm256_cvttps_epi32(_mm256_floor_ps(a)); }
static inline vi round_i(vf a) { return _mm256_cvtps_epi32(a); }
static inline vf to_f(vi a) { return _mm256_cvtepi32_ps(a); }
static inline vi imin(vi a, vi b) { return _mm256_min_epi32(a, b); }
static inline vi as_i(vf a) { return _mm256_castps_si256(a); }
static inline vf as_f(vi a) { return _mm256_castsi256_ps(a); }
static inline vi iand(vi a, vi b) { return _mm256_and_si256(a, b); }
static inline vi ior(vi a, vi b) { return _mm256_or_si256(a, b); }
static inline vi isub(vi a, vi b) { return _mm256_sub_epi32(a, b); }
static inline vi iadd(vi a, vi b) { return _mm256_add_epi32(a, b); }
static inline vi srl23(vi a) { return _mm256_srli_epi32(a, 23); }
static inline vi sll23(vi a) { return _mm256_slli_epi32(a, 23); }
static inline vf sel_gt(vf a, vf b, vf x, vf y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
static inline vi isel_gt(vf a, vf b, vi x, vi y) {
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(y), _mm256_castsi256_ps(x), _mm256_cmp_ps(a, b, _CMP_GT_OQ)));
}
static inline vf lookup_perm(const float* t, vi idx) { return _mm256_permutevar8x32_ps(_mm256_loadu_ps(t), idx); }
static inline vf lookup_gather(const float* t, vi idx) { return _mm256_i32gather_ps(t, idx, 4); }
static inline vf blend_range(vf old, vf nw, int a, int b) {
    const vi lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    vi m = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(a), lane), _mm256_cmpgt_epi32(_mm256_set1_epi32(b), lane));
    return _mm256_blendv_ps(old, nw, _mm256_castsi256_ps(m));
}
static inline vf load_u8(const uint8_t* p) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)p))); }
static inline vf load_u16(const uint16_t* p) { return _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p))); }
// v holds 8 int32 already clamped to the target range.
static inline void store_u8(uint8_t* p, vi v) {
    __m256i w = _mm256_packus_epi32(v, v);   // lane0: v0..3 v0..3, lane1: v4..7 v4..7 (u16)
    w = _mm256_packus_epi16(w, w);           // bytes; dword 0 = v0..3, dword 4 = v4..7
    w = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0));
    _mm_storel_epi64((__m128i*)p, _mm256_castsi256_si128(w));
}
static inline void store_u16(uint16_t* p, vi v) {
    __m256i w = _mm256_packus_epi32(v, v);
    w = _mm256_permute4x64_epi64(w, 0x08);  // qwords 0 and 2 -> low 128 bits
    _mm_storeu_si128((__m128i*)p, _mm256_castsi256_si128(w));
}
#else
const int L = 1;
typedef float vf;
typedef int32_t vi;
static inline vf ld(const float* p) { return *p; }
static inline void st(float* p, vf v) { *p = v; }
static inline vf set1(float a) { return a; }
static inline vi iset1(int a) { return a; }
static inline vf add(vf a, vf b) { return a + b; }
static inline vf sub(vf a, vf b) { return a - b; }
static inline vf mul(vf a, vf b) { return a * b; }
static inline vf div_(vf a, vf b) { return a / b; }
static inline vf fma_(vf a, vf b, vf c) { return a * b + c; }
static inline vf vmax(vf a, vf b) { return a > b ? a : b; }
static inline vf vmin(vf a, vf b) { return a < b ? a : b; }
static inline vi floor_i(vf a) { return (vi)floorf(a); }
static inline vi round_i(vf a) { return (vi)nearbyintf(a); }
static inline vf to_f(vi a) { return (vf)a; }
static inline vi imin(vi a, vi b) { return a < b ? a : b; }
static inline vi as_i(vf a) { vi r; memcpy(&r, &a, 4); return r; }
static inline vf as_f(vi a) { vf r; memcpy(&r, &a, 4); return r; }
static inline vi iand(vi a, vi b) { return a & b; }
static inline vi ior(vi a, vi b) { return a | b; }
static inline vi isub(vi a, vi b) { return a - b; }
static inline vi iadd(vi a, vi b) { return a + b; }
static inline vi srl23(vi a) { return (vi)((uint32_t)a >> 23); }
static inline vi sll23(vi a) { return (vi)((uint32_t)a << 23); }
static inline vf sel_gt(vf a, vf b, vf x, vf y) { return a > b ? x : y; }
static inline vi isel_gt(vf a, vf b, vi x, vi y) { return a > b ? x : y; }
static inline vf lookup_perm(const float* t, vi idx) { return t[idx]; }
static inline vf lookup_gather(const float* t, vi idx) { return t[idx]; }
static inline vf blend_range(vf old, vf nw, int a, int b) { return (a <= 0 && b >= 1) ? nw : old; }
static inline vf load_u8(const uint8_t* p) { return (vf)*p; }
static inline vf load_u16(const uint16_t* p) { return (vf)*p; }
static inline void store_u8(uint8_t* p, vi v) { *p = (uint8_t)v; }
static inline void store_u16(uint16_t* p, vi v) { *p = (uint16_t)v; }
#endif

// ---------------------------------------------------------------------------------------------
// 3-channel interleaved <-> planar for L pixels (3 vectors), via blends + one permute per channel.
// Float index i of the interleaved block belongs to channel i % 3 and pixel i / 3.
// ---------------------------------------------------------------------------------------------
struct Shuffle {
    int load_idx[3][L > 1 ? L : 1];   // channel vector lane k <- lane load_idx of the blended vector
    int store_idx[3][L > 1 ? L : 1];  // blended vector lane p <- channel lane store_idx
    int src_of[3][L > 1 ? L : 1];     // for channel ch, lane p comes from source vector src_of (0,1,2)
    int ch_of[3][L > 1 ? L : 1];      // for source s, lane p holds channel ch_of
};

static Shuffle make_shuffle() {
    Shuffle s;
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < L; p++)
            for (int src = 0; src < 3; src++)
                if ((src * L + p) % 3 == ch) {
                    int pix = (src * L + p) / 3;
                    s.src_of[ch][p] = src;
                    s.load_idx[ch][pix] = p;
                    s.store_idx[ch][p] = pix;
                }
    for (int src = 0; src < 3; src++)
        for (int p = 0; p < L; p++) s.ch_of[src][p] = (src * L + p) % 3;
    return s;
}

#if defined(__AVX512F__)
struct ShuffleRegs {
    __m512i load_idx[3], store_idx[3];
    __mmask16 from1[3], from2[3];  // per channel: lanes taken from source 1 / source 2
    __mmask16 is1[3], is2[3];      // per source: lanes holding channel 1 / channel 2
};
static ShuffleRegs make_regs() {
    Shuffle s = make_shuffle();
    ShuffleRegs r;
    for (int c = 0; c < 3; c++) {
        r.load_idx[c] = _mm512_loadu_si512(s.load_idx[c]);
        r.store_idx[c] = _mm512_loadu_si512(s.store_idx[c]);
        unsigned f1 = 0, f2 = 0, i1 = 0, i2 = 0;
        for (int p = 0; p < L; p++) {
            if (s.src_of[c][p] == 1) f1 |= 1u << p;
            if (s.src_of[c][p] == 2) f2 |= 1u << p;
            if (s.ch_of[c][p] == 1) i1 |= 1u << p;
            if (s.ch_of[c][p] == 2) i2 |= 1u << p;
        }
        r.from1[c] = (__mmask16)f1; r.from2[c] = (__mmask16)f2;
        r.is1[c] = (__mmask16)i1; r.is2[c] = (__mmask16)i2;
    }
    return r;
}
static const ShuffleRegs& regs() { static const ShuffleRegs r = make_regs(); return r; }
static inline void deinterleave(vf a, vf b, vf c, vf& x0, vf& x1, vf& x2) {
    const ShuffleRegs& R = regs();
    vf* out[3] = {&x0, &x1, &x2};
    for (int ch = 0; ch < 3; ch++) {
        vf t = _mm512_mask_blend_ps(R.from2[ch], _mm512_mask_blend_ps(R.from1[ch], a, b), c);
        *out[ch] = _mm512_permutexvar_ps(R.load_idx[ch], t);
    }
}
static inline void interleave(vf x0, vf x1, vf x2, vf& a, vf& b, vf& c) {
    const ShuffleRegs& R = regs();
    vf t0 = _mm512_permutexvar_ps(R.store_idx[0], x0);
    vf t1 = _mm512_permutexvar_ps(R.store_idx[1], x1);
    vf t2 = _mm512_permutexvar_ps(R.store_idx[2], x2);
    vf* out[3] = {&a, &b, &c};
    for (int s = 0; s < 3; s++) *out[s] = _mm512_mask_blend_ps(R.is2[s], _mm512_mask_blend_ps(R.is1[s], t0, t1), t2);
}
#elif defined(__AVX2__)
struct ShuffleRegs {
    __m256i load_idx[3], store_idx[3];
    __m256 from1[3], from2[3], is1[3], is2[3];
};
static ShuffleRegs make_regs() {
    Shuffle s = make_shuffle();
    ShuffleRegs r;
    for (int c = 0; c < 3; c++) {
        r.load_idx[c] = _mm256_loadu_si256((const __m256i*)s.load_idx[c]);
        r.store_idx[c] = _mm256_loadu_si256((const __m256i*)s.store_idx[c]);
        int f1[8], f2[8], i1[8], i2[8];
        for (int p = 0; p < L; p++) {
            f1[p] = s.src_of[c][p] == 1 ? -1 : 0;
            f2[p] = s.src_of[c][p] == 2 ? -1 : 0;
            i1[p] = s.ch_of[c][p] == 1 ? -1 : 0;
            i2[p] = s.ch_of[c][p] == 2 ? -1 : 0;
        }
        r.from1[c] = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i*)f1));
        r.from2[c] = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i*)f2));
        r.is1[c] = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i*)i1));
        r.is2[c] = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i*)i2));
    }
    return r;
}
static const ShuffleRegs& regs() { static const ShuffleRegs r = make_regs(); return r; }
static inline void deinterleave(vf a, vf b, vf c, vf& x0, vf& x1, vf& x2) {
    const ShuffleRegs& R = regs();
    vf* out[3] = {&x0, &x1, &x2};
    for (int ch = 0; ch < 3; ch++) {
        vf t = _mm256_blendv_ps(_mm256_blendv_ps(a, b, R.from1[ch]), c, R.from2[ch]);
        *out[ch] = _mm256_permutevar8x32_ps(t, R.load_idx[ch]);
    }
}
static inline void interleave(vf x0, vf x1, vf x2, vf& a, vf& b, vf& c) {
    const ShuffleRegs& R = regs();
    vf t0 = _mm256_permutevar8x32_ps(x0, R.store_idx[0]);
    vf t1 = _mm256_permutevar8x32_ps(x1, R.store_idx[1]);
    vf t2 = _mm256_permutevar8x32_ps(x2, R.store_idx[2]);
    vf* out[3] = {&a, &b, &c};
    for (int s = 0; s < 3; s++) *out[s] = _mm256_blendv_ps(_mm256_blendv_ps(t0, t1, R.is1[s]), t2, R.is2[s]);
}
#else
static inline void deinterleave(vf a, vf b, vf c, vf& x0, vf& x1, vf& x2) { x0 = a; x1 = b; x2 = c; }
static inline void interleave(vf x0, vf x1, vf x2, vf& a, vf& b, vf& c) { a = x0; b = x1; c = x2; }
#endif

// ---------------------------------------------------------------------------------------------
// Pixel formats: read L pixels as three float vectors in [0,1]-ish, write them back.
// `row` points at the first pixel of an image row; `plane` is the CHW plane stride (elements).
// ---------------------------------------------------------------------------------------------
template <int F>
struct Pix;

template <>
struct Pix<HWC_F32> {
    typedef float T;
    static const int chans_inline = 3;
    static inline void load(const T* p, long, vf& r, vf& g, vf& b) { deinterleave(ld(p), ld(p + L), ld(p + 2 * L), r, g, b); }
    static inline void store(T* p, long, vf r, vf g, vf b) {
        vf a0, a1, a2;
        interleave(r, g, b, a0, a1, a2);
        st(p, a0); st(p + L, a1); st(p + 2 * L, a2);
    }
};

template <>
struct Pix<CHW_F32> {
    typedef float T;
    static const int chans_inline = 1;
    static inline void load(const T* p, long plane, vf& r, vf& g, vf& b) { r = ld(p); g = ld(p + plane); b = ld(p + 2 * plane); }
    static inline void store(T* p, long plane, vf r, vf g, vf b) { st(p, r); st(p + plane, g); st(p + 2 * plane, b); }
};

// Integer formats: normalise to [0,1] on read; round (ties to even) and clamp on write.
template <typename IT, int MAXV>
struct PixInt {
    typedef IT T;
    static const int chans_inline = 3;
    static inline void load(const IT* p, long, vf& r, vf& g, vf& b) {
        const vf s = set1(1.0f / MAXV);
        vf a0, a1, a2;
        load_raw(p, a0, a1, a2);
        deinterleave(mul(a0, s), mul(a1, s), mul(a2, s), r, g, b);
    }
    static inline void load_raw(const IT* p, vf& a0, vf& a1, vf& a2);
    static inline vi quant(vf v) { return round_i(vmin(vmax(mul(v, set1((float)MAXV)), set1(0.0f)), set1((float)MAXV))); }
    static inline void store(IT* p, long, vf r, vf g, vf b) {
        vf a0, a1, a2;
        interleave(r, g, b, a0, a1, a2);
        store_raw(p, quant(a0), quant(a1), quant(a2));
    }
    static inline void store_raw(IT* p, vi a0, vi a1, vi a2);
};
template <>
inline void PixInt<uint8_t, 255>::load_raw(const uint8_t* p, vf& a0, vf& a1, vf& a2) { a0 = load_u8(p); a1 = load_u8(p + L); a2 = load_u8(p + 2 * L); }
template <>
inline void PixInt<uint8_t, 255>::store_raw(uint8_t* p, vi a0, vi a1, vi a2) { store_u8(p, a0); store_u8(p + L, a1); store_u8(p + 2 * L, a2); }
template <>
inline void PixInt<uint16_t, 65535>::load_raw(const uint16_t* p, vf& a0, vf& a1, vf& a2) { a0 = load_u16(p); a1 = load_u16(p + L); a2 = load_u16(p + 2 * L); }
template <>
inline void PixInt<uint16_t, 65535>::store_raw(uint16_t* p, vi a0, vi a1, vi a2) { store_u16(p, a0); store_u16(p + L, a1); store_u16(p + 2 * L, a2); }

template <>
struct Pix<HWC_U8> : PixInt<uint8_t, 255> {};
template <>
struct Pix<HWC_U16> : PixInt<uint16_t, 65535> {};

// ---------------------------------------------------------------------------------------------
// "log" input encoding (hdrnet.encode_input), vectorised: log2 = exponent + log2(mantissa), with
// the mantissa in [sqrt(1/2), sqrt(2)) and ln(m) = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172:
// the series to s^9 is accurate to ~1e-9, far below float rounding.
// ---------------------------------------------------------------------------------------------
static inline vf log2_(vf x) {  // x > 0, finite or +inf
    vi bits = as_i(x);
    vi e = isub(srl23(bits), iset1(127));
    vf m = as_f(ior(iand(bits, iset1(0x007fffff)), iset1(0x3f800000)));  // [1, 2)
    const vf sqrt2 = set1(1.41421356f);
    e = isel_gt(m, sqrt2, iadd(e, iset1(1)), e);
    m = sel_gt(m, sqrt2, mul(m, set1(0.5f)), m);
    vf s = div_(sub(m, set1(1.0f)), add(m, set1(1.0f)));
    vf s2 = mul(s, s);
    vf p = fma_(s2, set1(1.0f / 9.0f), set1(1.0f / 7.0f));
    p = fma_(p, s2, set1(1.0f / 5.0f));
    p = fma_(p, s2, set1(1.0f / 3.0f));
    p = fma_(p, s2, set1(1.0f));
    vf ln_m = mul(set1(2.0f), mul(s, p));
    return fma_(ln_m, set1(1.4426950408889634f), to_f(e));
}

static inline vf encode_log(vf x) {
    x = add(vmax(x, set1(0.0f)), set1(1.0f / 1048576.0f));  // clamp(min=0) + 2^-LOG_MIN
    vf e = mul(add(log2_(x), set1(LOG_MIN)), set1(1.0f / (LOG_MIN + LOG_MAX)));
    return vmin(vmax(e, set1(0.0f)), set1(1.0f));
}

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

static inline void* alloc64(size_t bytes) {
    void* p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    return p;
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

// ---------------------------------------------------------------------------------------------
// Slice tables. Between two neighbouring cells (x0, x1 = x0+1) and intensity bins (d, d+1) the
// trilinear interpolant at fixed y is bilinear in (wx, wz):
//     a = c0 + wx*cx + wz*(cz + wx*cxz)
// so per (grid row, x-span, coefficient) we store four tables indexed by the bin d: c0, cx, cz,
// cxz, each TL floats. A pixel then needs 4 in-register lookups (permutes) per coefficient.
// Tables are linear in the grid, so a pixel row's tables are the lerp (in y) of two grid rows'.
// ---------------------------------------------------------------------------------------------
struct Dims {
    int H, W, D, Gh, Gw;
    int C;  // channels of the grid: 12 coefficients, or 2 (numerator, weight) for the bilateral base
    int nint, nspan, TL;
    long per_row;  // floats of tables per grid row: nspan * 12 * 4 * TL
    int out_enc;        // 0: the affine output as is; 1: decode_srgb_log, times out_scale, at most 1
    int guide_luma;     // 1 ("log_luma" encoding): the guide reads the log luminance in place of the channel mean
    float out_scale;
};

static void build_tables(const float* grid, const Dims& d, float* T) {
    const int D = d.D, Gh = d.Gh, Gw = d.Gw, TL = d.TL;
    for (int gy = 0; gy < Gh; gy++)
        for (int s = 0; s < d.nspan; s++) {
            int x0 = s, x1 = imin_(s + 1, Gw - 1);
            for (int c = 0; c < d.C; c++) {
                float* t = T + gy * d.per_row + ((long)s * d.C + c) * 4 * TL;
                memset(t, 0, sizeof(float) * 4 * TL);
                for (int z = 0; z < d.nint; z++) {
                    int z1 = imin_(z + 1, D - 1);
                    const float* g0 = grid + ((long)(c * D + z) * Gh + gy) * Gw;
                    const float* g1 = grid + ((long)(c * D + z1) * Gh + gy) * Gw;
                    float a00 = g0[x0], a10 = g0[x1], a01 = g1[x0], a11 = g1[x1];
                    t[z] = a00;
                    t[TL + z] = a10 - a00;
                    t[2 * TL + z] = a01 - a00;
                    t[3 * TL + z] = (a11 - a10) - (a01 - a00);
                }
            }
        }
}

// Cell-centred source coordinate with border clamp, as grid_sample(align_corners=False, border):
// normalised n = (i + 0.5) / size * 2 - 1, then ((n + 1) * cells - 1) / 2 clamped to [0, cells-1].
static inline float source_coord(int i, int size, int cells) {
    float n = (i + 0.5f) / (float)size * 2.0f - 1.0f;
    float g = ((n + 1.0f) * (float)cells - 1.0f) / 2.0f;
    if (g < 0.0f) g = 0.0f;
    if (g > (float)(cells - 1)) g = (float)(cells - 1);
    return g;
}

template <bool GATHER>
static inline vf lk(const float* t, vi idx) { return GATHER ? lookup_gather(t, idx) : lookup_perm(t, idx); }

template <bool GATHER, int C = 12>
static inline void slice(vf* A, const float* t, int TL, vi z0, vf wx, vf wz) {
    for (int c = 0; c < C; c++) {
        const float* tc = t + c * 4 * TL;
        vf c0 = lk<GATHER>(tc, z0), cx = lk<GATHER>(tc + TL, z0);
        vf cz = lk<GATHER>(tc + 2 * TL, z0), cxz = lk<GATHER>(tc + 3 * TL, z0);
        A[c] = fma_(wz, fma_(wx, cxz, cz), fma_(wx, cx, c0));
    }
}

struct Columns {
    int* span;        // [W + L] x-span of each column (padded with the last column)
    float* wx;        // [W + L] weight of the right cell
    int* span_start;  // [nspan + 1] first column whose span is >= s
};

// The encoded log luminance of a pixel (hdrnet.luma_guide_input, hdrnet.encoded_log_luminance): the Rec. 709
// luminance of what the encoding keeps, min(max(x,0) + 2^-20, 1), log2, in the encoding's units.
static inline vf log_lum_enc(vf r, vf g, vf b) {
    const vf eps = set1(1.0f / 1048576.0f), one = set1(1.0f), zero = set1(0.0f);
    vf lum = mul(set1(0.2126f), vmin(add(vmax(r, zero), eps), one));
    lum = fma_(set1(0.7152f), vmin(add(vmax(g, zero), eps), one), lum);
    lum = fma_(set1(0.0722f), vmin(add(vmax(b, zero), eps), one), lum);
    return mul(add(log2_(lum), set1(LOG_MIN)), set1(1.0f / (LOG_MIN + LOG_MAX)));
}

// The bilateral base grid of a guide_bilateral student (grid.bilateral_base): its dims, tables and columns.
struct Bilateral {
    Dims d;        // C = 2: numerator, weight
    float* T_all;  // [Gh * per_row] tables
    Columns cols;
    bool gather;
};

// The base at each pixel of a block: the blurred grid read at (x, y, le), numerator over weight.
static inline vf bilateral_at(const Bilateral& bl, const float* rowT, int j0, vf le) {
    const Dims& d = bl.d;
    vf gz = vmin(vmax(fma_(le, set1((float)d.D), set1(-0.5f)), set1(0.0f)), set1((float)(d.D - 1)));
    vi z0 = imin(floor_i(gz), iset1(d.nint - 1));
    vf wz = sub(gz, to_f(z0));
    vf wx = ld(bl.cols.wx + j0);
    const long span_floats = 2L * 4 * d.TL;
    int s0 = bl.cols.span[j0], s1 = bl.cols.span[j0 + L - 1];
    vf A[2];
    if (bl.gather) slice<true, 2>(A, rowT + s0 * span_floats, d.TL, z0, wx, wz);
    else slice<false, 2>(A, rowT + s0 * span_floats, d.TL, z0, wx, wz);
    for (int s = s0 + 1; s <= s1; s++) {
        vf B[2];
        if (bl.gather) slice<true, 2>(B, rowT + s * span_floats, d.TL, z0, wx, wz);
        else slice<false, 2>(B, rowT + s * span_floats, d.TL, z0, wx, wz);
        int a = bl.cols.span_start[s] - j0;
        for (int c = 0; c < 2; c++) A[c] = blend_range(A[c], B[c], a, L);
    }
    return div_(A[0], vmax(A[1], set1(1e-20f)));
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

// Column coordinates of a grid (the same for every row), its x-spans and where each span starts.
static void fill_columns(Columns& cols, int W, int Gw, int nspan) {
    for (int j = 0; j < W + L; j++) {
        int jj = imin_(j, W - 1);
        float gx = source_coord(jj, W, Gw);
        int s = imin_((int)floorf(gx), nspan - 1);
        cols.span[j] = s;
        cols.wx[j] = gx - (float)s;
    }
    for (int s = 0, j = 0; s <= nspan; s++) {
        while (j < W && cols.span[j] < s) j++;
        cols.span_start[s] = j;
    }
}

// The tables of image row i: the lerp of two grid rows' tables (kept when row i - 1 had the same ones).
static void row_tables(const Dims& d, const float* T_all, int i, float* rowT, int& have_y0, float& have_wy) {
    float gy = source_coord(i, d.H, d.Gh);
    int y0 = d.Gh > 1 ? imin_((int)floorf(gy), d.Gh - 2) : 0;
    int y1 = imin_(y0 + 1, d.Gh - 1);
    float wy = gy - (float)y0;
    if (y0 == have_y0 && wy == have_wy) return;
    const float* t0 = T_all + y0 * d.per_row;
    const float* t1 = T_all + y1 * d.per_row;
    for (long k = 0; k < d.per_row; k++) rowT[k] = t0[k] + wy * (t1[k] - t0[k]);
    have_y0 = y0;
    have_wy = wy;
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

template <int F>
static int run_f(const void* in, void* out, const Dims& d, const float* grid, const Guide& G, const Bilateral* bl,
                 int enc, int threads) {
    bool gather = d.nint > L;
    if (enc) return gather ? run<F, true, true>(in, out, d, grid, G, bl, threads) : run<F, true, false>(in, out, d, grid, G, bl, threads);
    return gather ? run<F, false, true>(in, out, d, grid, G, bl, threads) : run<F, false, false>(in, out, d, grid, G, bl, threads);
}

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

// Dims of a grid of C channels for an H x W image (see hd_slice_apply for the table stride TL).
static Dims make_dims(int H, int W, int D, int Gh, int Gw, int C);

// Tables and columns of a base grid [2, D, Gh, Gw] for an H x W image; 0, or -3 out of memory.
static int bilateral_setup(Bilateral& B, int H, int W, const float* bgrid, int D, int Gh, int Gw) {
    memset(&B, 0, sizeof(B));
    B.d = make_dims(H, W, D, Gh, Gw, 2);
    B.gather = B.d.nint > L;
    B.T_all = (float*)alloc64(sizeof(float) * Gh * B.d.per_row);
    B.cols.span = (int*)alloc64(sizeof(int) * (W + L));
    B.cols.wx = (float*)alloc64(sizeof(float) * (W + L));
    B.cols.span_start = (int*)alloc64(sizeof(int) * (B.d.nspan + 2));
    if (!B.T_all || !B.cols.span || !B.cols.wx || !B.cols.span_start) {
        free(B.T_all); free(B.cols.span); free(B.cols.wx); free(B.cols.span_start);
        return -3;
    }
    build_tables(bgrid, B.d, B.T_all);
    fill_columns(B.cols, W, Gw, B.d.nspan);
    return 0;
}

static void bilateral_free(Bilateral& B) { free(B.T_all); free(B.cols.span); free(B.cols.wx); free(B.cols.span_start); }

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

static Dims make_dims(int H, int W, int D, int Gh, int Gw, int C) {
    Dims d;
    memset(&d, 0, sizeof(d));
    d.H = H; d.W = W; d.D = D; d.Gh = Gh; d.Gw = Gw; d.C = C;
    d.nint = D > 1 ? D - 1 : 1;
    d.nspan = Gw > 1 ? Gw - 1 : 1;
    // Table stride: gathers index tables of nint floats; a permute loads L floats starting at the
    // table (the tail reads into the next table or the padding, harmlessly), so TL only needs to
    // cover nint; rounding to 8 keeps loads 32-byte aligned and halves the AVX-512 tables.
    d.TL = (d.nint > L || L == 1) ? d.nint : (d.nint + 7) / 8 * 8;
    d.per_row = (long)d.nspan * C * 4 * d.TL;
    return d;
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

extern "C" int HD_CAT(hd_downsample, HD_ISA)(const void* in, int fmt, int H, int W, int enc, int S, float* out, int threads) {
    return lowres_pass<DownPass>(in, fmt, H, W, enc, S, out, threads);
}

extern "C" int HD_CAT(hd_detail, HD_ISA)(const void* in, int fmt, int H, int W, int enc, int S, float* out, int threads) {
    return lowres_pass<DetailPass>(in, fmt, H, W, enc, S, out, threads);
}

extern "C" int HD_CAT(hd_lanes, HD_ISA)() { return L; }
