// Slice tables and the bilateral base-grid reader, shared by slice_apply.cpp (the coefficient grid, and
// guide_bilateral's base grid) and bilateral.cpp (the base map). Needs simd.h; internal linkage like it.
#ifndef HD_SLICE_TABLES_H
#define HD_SLICE_TABLES_H

#include "simd.h"

namespace {

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

// Dims of a grid of C channels for an H x W image.
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

}  // namespace

#endif  // HD_SLICE_TABLES_H
