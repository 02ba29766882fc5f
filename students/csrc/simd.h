// The per-ISA vector layer shared by every kernel file (slice_apply.cpp, lowres.cpp, bilateral.cpp).
//
// students/build.py compiles each kernel file several times, each with its own -m flags and
// -DHD_ISA=<name> (avx512, avx2, scalar); students/csrc/fused.cpp picks one variant at run time with
// __builtin_cpu_supports. Everything in this header and in the kernel files lives in an anonymous
// namespace (internal linkage: each object file keeps its own copy) and uses no std:: templates, so no
// AVX-512 copy of an inline function can be picked by the linker for code that runs on a CPU without
// it. Only the extern "C" entry points, suffixed with the ISA name (HD_CAT), are visible.
//
// Here: the vector types and operations (vf, vi, L lanes), 3-channel interleave / deinterleave, the
// pixel formats (Pix<F>), the "log" encoding and the encoded log luminance, and aligned allocation.
//
// Conventions follow students/grid.py (the differentiable torch path) exactly:
//   grid [12, D, Gh, Gw], row-major 3x4 affine per cell; cell-centred coordinates
//   gx = (j + 0.5) * Gw / W - 0.5 (same for y), gz = guide * D - 0.5, all clamped to the border;
//   guide = clamp(sum_c mix_c * curve_c((ccm @ x + ccm_bias)_c) + mix_bias, 0, 1),
//   curve_c(v) = sum_k slope_ck * relu(v - shift_ck); output_c = A[c,:3] . x + A[c,3].
//   "log" encoding: x <- clamp((log2(max(x,0) + 2^-20) + 20) / 20, 0, 1), applied before everything.
//   "log_luma" (hdrnet.luma_guide_input): the "log" encoding, and the guide reads x - mean_c(x) + the encoded
//   log of the Rec. 709 luminance of the decoded pixel, min(max(x,0) + 2^-20, 1).
#ifndef HD_SIMD_H
#define HD_SIMD_H

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

// The encoded log luminance of a pixel (hdrnet.luma_guide_input, hdrnet.encoded_log_luminance): the Rec. 709
// luminance of what the encoding keeps, min(max(x,0) + 2^-20, 1), log2, in the encoding's units.
static inline vf log_lum_enc(vf r, vf g, vf b) {
    const vf eps = set1(1.0f / 1048576.0f), one = set1(1.0f), zero = set1(0.0f);
    vf lum = mul(set1(0.2126f), vmin(add(vmax(r, zero), eps), one));
    lum = fma_(set1(0.7152f), vmin(add(vmax(g, zero), eps), one), lum);
    lum = fma_(set1(0.0722f), vmin(add(vmax(b, zero), eps), one), lum);
    return mul(add(log2_(lum), set1(LOG_MIN)), set1(1.0f / (LOG_MIN + LOG_MAX)));
}

static inline void* alloc64(size_t bytes) {
    void* p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    return p;
}

}  // namespace

#endif  // HD_SIMD_H
