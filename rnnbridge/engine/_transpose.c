/*
 * service.engine._transpose: a bit-exact, cache-blocked matrix transpose.
 *
 * transpose_into(target, source) does target[...] = source.T for two 2-D buffers whose
 * rows are contiguous (any row stride: the target is usually a column slice of a bigger
 * output). Items are moved as 1-, 2-, 4- or 8-byte integers, never as floating-point
 * values, so every bit pattern (signalling NaN payloads, -0.0, subnormals) arrives
 * unchanged. The copy runs without the GIL, on the calling thread only.
 *
 * The target is written in bands of BAND rows, and each band TILE bytes (1 KiB) of columns
 * at a time: a tile of BAND rows x TILE bytes is transposed, in square register blocks,
 * into a stage that stays in L2, and each row's completed lines then go to memory with
 * non-temporal stores (no read of the target line first; the target is written once).
 * Rows that do not start on a line boundary keep their unfinished line in the stage until
 * the next tile completes it. The register blocks are chosen when the module is imported:
 * 256-bit AVX2 blocks (8 x 8 of 4-byte items, 4 x 4 of 8-byte) where the CPU has AVX2,
 * SSE2 integer unpacks otherwise on x86, a portable item loop elsewhere. Every tile
 * function inlines its block.
 *
 * Measured (bench.engine and a micro-benchmark, 2-core EPYC): normal stores instead of
 * streaming ones were 30-45% slower, into fresh and into already-written targets alike;
 * software prefetch of the next tile's source made no difference and was removed.
 * Figures against np.copy: `python -m bench.engine` (bench/RESULTS.md).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* gcc and clang compile AVX2 functions in an SSE2 build and choose them at run time */
#if defined(__SSE2__) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define HAVE_AVX2 1
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2")))
#endif

/* a cache line */
#define LINE 64
/* A tile is BAND target rows x TILE bytes of target columns: each target row is written
 * TILE bytes at a time and each source row read BAND items at a time (runs of 1 KiB or
 * more on both sides keep memory streaming; 256-byte runs were 30% slower). */
#define TILE (16 * LINE)
#define BAND 512
/* a stage row: the line a row's previous tile left unfinished, then the tile (the stage,
 * BAND of them, is about half of a 1 MiB L2 cache) */
#define STAGE_ROW (LINE + TILE)

/* target rows [0, rows) x columns [0, cols) of a tile, from the source */
typedef void (*tile_fn)(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss, Py_ssize_t rows,
                        Py_ssize_t cols);

typedef struct {
    Py_ssize_t itemsize;
    tile_fn transpose_tile;
} Kernel;

/* One item, copied as bytes: memcpy of a constant size compiles to a single move and
 * makes no assumption about alignment. */
static inline void
copy_item(char *dst, const char *src, Py_ssize_t itemsize)
{
    switch (itemsize) {
        case 1: memcpy(dst, src, 1); break;
        case 2: memcpy(dst, src, 2); break;
        case 4: memcpy(dst, src, 4); break;
        default: memcpy(dst, src, 8); break;
    }
}

/* target rows [r0, r1) x columns [c0, c1) of a tile, item by item (the tile's ragged edges) */
static inline void
transpose_items(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss, Py_ssize_t itemsize,
                Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t c0, Py_ssize_t c1)
{
    for (Py_ssize_t r = r0; r < r1; r++) {
        for (Py_ssize_t c = c0; c < c1; c++) {
            copy_item(dst + r * ds + c * itemsize, src + c * ss + r * itemsize, itemsize);
        }
    }
}

/* A tile function: square register blocks of side B (BLOCK, inlined), source rows
 * outermost (each is read to the end of the tile before the next, which keeps a
 * power-of-two row stride from evicting lines before they are used up), then the ragged
 * edges item by item. */
#define DEFINE_TILE(NAME, ATTRIBUTES, SIZE, B, BLOCK)                                                   \
    ATTRIBUTES static void NAME(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss, Py_ssize_t rows, \
                                Py_ssize_t cols)                                                         \
    {                                                                                                    \
        const Py_ssize_t full_rows = rows - rows % (B), full_cols = cols - cols % (B);                   \
        for (Py_ssize_t c = 0; c < full_cols; c += (B)) {                                                \
            for (Py_ssize_t r = 0; r < full_rows; r += (B)) {                                            \
                BLOCK(dst + r * ds + c * (SIZE), ds, src + c * ss + r * (SIZE), ss);                     \
            }                                                                                            \
        }                                                                                                \
        transpose_items(dst, ds, src, ss, SIZE, 0, full_rows, full_cols, cols);                          \
        transpose_items(dst, ds, src, ss, SIZE, full_rows, rows, 0, cols);                               \
    }

/* portable: 8 x 8 blocks, item by item */
#define SCALAR_BLOCK(NAME, SIZE)                                                      \
    static inline void NAME(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss) \
    {                                                                                 \
        transpose_items(dst, ds, src, ss, SIZE, 0, 8, 0, 8);                          \
    }

SCALAR_BLOCK(scalar_block_1, 1)
SCALAR_BLOCK(scalar_block_2, 2)
SCALAR_BLOCK(scalar_block_4, 4)
SCALAR_BLOCK(scalar_block_8, 8)
DEFINE_TILE(scalar_tile_1, , 1, 8, scalar_block_1)
DEFINE_TILE(scalar_tile_2, , 2, 8, scalar_block_2)
DEFINE_TILE(scalar_tile_4, , 4, 8, scalar_block_4)
DEFINE_TILE(scalar_tile_8, , 8, 8, scalar_block_8)

static const Kernel SCALAR_KERNELS[] = {
    {1, scalar_tile_1},
    {2, scalar_tile_2},
    {4, scalar_tile_4},
    {8, scalar_tile_8},
};

#if defined(__SSE2__)

/* The N x N block transposes below are all the same network: log2(N) rounds of
 * y[2k + h] = unpack{lo,hi}(x[k], x[k + N/2]), each of which rotates the (row, column)
 * index bits by one; after log2(N) rounds rows and columns have swapped. */
#define SHUFFLE_ROUND(N, LO, HI)                         \
    do {                                                 \
        __m128i y_[N];                                   \
        for (int k_ = 0; k_ < (N) / 2; k_++) {           \
            y_[2 * k_] = LO(x[k_], x[k_ + (N) / 2]);     \
            y_[2 * k_ + 1] = HI(x[k_], x[k_ + (N) / 2]); \
        }                                                \
        memcpy(x, y_, sizeof(y_));                       \
    } while (0)

#define LOAD_ROWS(N)                                               \
    __m128i x[N];                                                  \
    for (int k_ = 0; k_ < (N); k_++) {                             \
        x[k_] = _mm_loadu_si128((const __m128i *)(src + k_ * ss)); \
    }

#define STORE_ROWS(N)                                         \
    for (int k_ = 0; k_ < (N); k_++) {                        \
        _mm_storeu_si128((__m128i *)(dst + k_ * ds), x[k_]); \
    }

static inline void
sse2_block_1(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss)
{
    LOAD_ROWS(16);
    for (int round = 0; round < 4; round++) {
        SHUFFLE_ROUND(16, _mm_unpacklo_epi8, _mm_unpackhi_epi8);
    }
    STORE_ROWS(16);
}

static inline void
sse2_block_2(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss)
{
    LOAD_ROWS(8);
    for (int round = 0; round < 3; round++) {
        SHUFFLE_ROUND(8, _mm_unpacklo_epi16, _mm_unpackhi_epi16);
    }
    STORE_ROWS(8);
}

static inline void
sse2_block_4(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss)
{
    LOAD_ROWS(4);
    for (int round = 0; round < 2; round++) {
        SHUFFLE_ROUND(4, _mm_unpacklo_epi32, _mm_unpackhi_epi32);
    }
    STORE_ROWS(4);
}

static inline void
sse2_block_8(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss)
{
    LOAD_ROWS(2);
    SHUFFLE_ROUND(2, _mm_unpacklo_epi64, _mm_unpackhi_epi64);
    STORE_ROWS(2);
}

DEFINE_TILE(sse2_tile_1, , 1, 16, sse2_block_1)
DEFINE_TILE(sse2_tile_2, , 2, 8, sse2_block_2)
DEFINE_TILE(sse2_tile_4, , 4, 4, sse2_block_4)
DEFINE_TILE(sse2_tile_8, , 8, 2, sse2_block_8)

static const Kernel SSE2_KERNELS[] = {
    {1, sse2_tile_1},
    {2, sse2_tile_2},
    {4, sse2_tile_4},
    {8, sse2_tile_8},
};

#endif /* __SSE2__ */

#if defined(HAVE_AVX2)

/* 256-bit blocks of N rows: the unpacks work within each 128-bit half, so the network
 * above, run on rows [0, N/2) and on rows [N/2, N), transposes four square quarters
 * (the halves of each register as separate blocks); row k then holds the columns k and
 * k + N/2 of the top quarters, row N/2 + k the same of the bottom ones, and a
 * permute2x128 of each pair makes the two target rows. */
#define AVX2_ROUND(X, M, LO, HI)                         \
    do {                                                 \
        __m256i y_[M];                                   \
        for (int k_ = 0; k_ < (M) / 2; k_++) {           \
            y_[2 * k_] = LO((X)[k_], (X)[k_ + (M) / 2]);     \
            y_[2 * k_ + 1] = HI((X)[k_], (X)[k_ + (M) / 2]); \
        }                                                \
        memcpy((X), y_, sizeof(y_));                     \
    } while (0)

#define AVX2_BLOCK(NAME, N, ROUNDS, LO, HI)                                                     \
    AVX2 static inline void NAME(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss)     \
    {                                                                                           \
        __m256i x[N];                                                                           \
        for (int k = 0; k < (N); k++) {                                                         \
            x[k] = _mm256_loadu_si256((const __m256i *)(src + k * ss));                         \
        }                                                                                       \
        for (int round = 0; round < (ROUNDS); round++) {                                        \
            AVX2_ROUND(x, (N) / 2, LO, HI);                                                     \
            AVX2_ROUND(x + (N) / 2, (N) / 2, LO, HI);                                           \
        }                                                                                       \
        for (int k = 0; k < (N) / 2; k++) {                                                     \
            const __m256i top = x[k], bottom = x[k + (N) / 2];                                  \
            _mm256_storeu_si256((__m256i *)(dst + k * ds), _mm256_permute2x128_si256(top, bottom, 0x20)); \
            _mm256_storeu_si256((__m256i *)(dst + (k + (N) / 2) * ds),                          \
                                _mm256_permute2x128_si256(top, bottom, 0x31));                  \
        }                                                                                       \
    }

AVX2_BLOCK(avx2_block_4, 8, 2, _mm256_unpacklo_epi32, _mm256_unpackhi_epi32)
AVX2_BLOCK(avx2_block_8, 4, 1, _mm256_unpacklo_epi64, _mm256_unpackhi_epi64)
/* 1- and 2-byte items keep their SSE2 blocks: a 16 x 16 AVX2 block of 2-byte items
 * needs every register and measured slower */
DEFINE_TILE(avx2_tile_1, AVX2, 1, 16, sse2_block_1)
DEFINE_TILE(avx2_tile_2, AVX2, 2, 8, sse2_block_2)
DEFINE_TILE(avx2_tile_4, AVX2, 4, 8, avx2_block_4)
DEFINE_TILE(avx2_tile_8, AVX2, 8, 4, avx2_block_8)

static const Kernel AVX2_KERNELS[] = {
    {1, avx2_tile_1},
    {2, avx2_tile_2},
    {4, avx2_tile_4},
    {8, avx2_tile_8},
};

#endif /* HAVE_AVX2 */

/* the kernels for this CPU, set when the module is imported */
static const Kernel *kernels = SCALAR_KERNELS;

static void
choose_kernels(void)
{
#if defined(__SSE2__)
    kernels = SSE2_KERNELS;
#endif
#if defined(HAVE_AVX2)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        kernels = AVX2_KERNELS;
    }
#endif
}

/* 64 bytes from `from` (any alignment) to `to` (a cache line), bypassing the caches where
 * the CPU can: the target is written once and not read back soon. */
static inline void
write_line(char *to, const char *from)
{
#if defined(__SSE2__)
    for (int k = 0; k < LINE / 16; k++) {
        _mm_stream_si128((__m128i *)(to + 16 * k), _mm_loadu_si128((const __m128i *)(from + 16 * k)));
    }
#else
    memcpy(to, from, LINE);
#endif
}

/* n bytes from `from` to `to`: whole aligned lines with write_line, the ends with memcpy */
static inline void
write_span(char *to, const char *from, Py_ssize_t n)
{
    Py_ssize_t head = Py_MIN(n, (Py_ssize_t)((LINE - (uintptr_t)to % LINE) % LINE));
    if (head > 0) {
        memcpy(to, from, head);
    }
    for (n -= head; n >= LINE; n -= LINE) {
        write_line(to + head, from + head);
        head += LINE;
    }
    if (n > 0) {
        memcpy(to + head, from + head, n);
    }
}

/* After a tile: write what the stage row of target row `row` holds, and keep the bytes of
 * a line the next tile completes.
 *
 * The stage row is [pending line | tile]. The tile covers the row from byte `offset` (a
 * multiple of TILE), `valid` bytes of it. A row that starts `skew` bytes past a line
 * boundary has, after each tile but the last, `skew` bytes that do not fill a line: they
 * move to the end of the pending line, ahead of the next tile. */
static inline void
flush_row(char *stage, char *row, Py_ssize_t offset, Py_ssize_t valid, int last)
{
    const Py_ssize_t skew = (Py_ssize_t)((uintptr_t)row % LINE);
    const Py_ssize_t pending = offset > 0 ? skew : 0, kept = last ? 0 : skew;
    write_span(row + offset - pending, stage + LINE - pending, pending + valid - kept);
    if (kept > 0) {
        memcpy(stage + LINE - kept, stage + LINE + valid - kept, kept);
    }
}

typedef struct {
    const Kernel *kernel;
    char *dst;
    const char *src;
    Py_ssize_t ds, ss;       /* row strides in bytes */
    Py_ssize_t rows, cols;   /* the target's shape */
    char *stage;             /* BAND rows of STAGE_ROW bytes */
} Job;

/* Target rows [r, r + n), one tile of columns after the other, through the stage. */
static void
transpose_band(const Job *job, Py_ssize_t r, Py_ssize_t n)
{
    const Py_ssize_t size = job->kernel->itemsize, per_tile = TILE / size;
    const char *src = job->src + r * size;
    for (Py_ssize_t c = 0; c < job->cols; c += per_tile) {
        const Py_ssize_t width = Py_MIN(per_tile, job->cols - c);
        const int last = c + width >= job->cols;
        job->kernel->transpose_tile(job->stage + LINE, STAGE_ROW, src + c * job->ss, job->ss, n, width);
        for (Py_ssize_t i = 0; i < n; i++) {
            flush_row(job->stage + i * STAGE_ROW, job->dst + (r + i) * job->ds, c * size, width * size, last);
        }
    }
}

static void
transpose(const Job *job)
{
    for (Py_ssize_t r = 0; r < job->rows; r += BAND) {
        transpose_band(job, r, Py_MIN(BAND, job->rows - r));
    }
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

/* The lowest and one past the highest byte a 2-D buffer spans. */
static void
byte_extent(const Py_buffer *view, const char **lo, const char **hi)
{
    const char *start = view->buf, *end = view->buf;
    for (int axis = 0; axis < 2; axis++) {
        Py_ssize_t span = (view->shape[axis] - 1) * view->strides[axis];
        if (span < 0) {
            start += span;
        }
        else {
            end += span;
        }
    }
    *lo = start;
    *hi = end + view->itemsize;
}

static int
check_row_major(const Py_buffer *view, const char *name)
{
    if (view->ndim != 2) {
        PyErr_Format(PyExc_ValueError, "%s must be 2-dimensional, not %d-dimensional", name, view->ndim);
        return -1;
    }
    if (view->shape[1] > 1 && view->strides[1] != view->itemsize) {
        PyErr_Format(PyExc_ValueError, "%s rows must be contiguous (inner stride %zd, item size %zd)", name,
                     view->strides[1], view->itemsize);
        return -1;
    }
    return 0;
}

static const Kernel *
check_pair(const Py_buffer *target, const Py_buffer *source)
{
    if (check_row_major(target, "target") < 0 || check_row_major(source, "source") < 0) {
        return NULL;
    }
    if (target->itemsize != source->itemsize) {
        PyErr_Format(PyExc_ValueError, "item sizes differ: target %zd bytes, source %zd bytes", target->itemsize,
                     source->itemsize);
        return NULL;
    }
    if (target->shape[0] != source->shape[1] || target->shape[1] != source->shape[0]) {
        PyErr_Format(PyExc_ValueError, "target shape (%zd, %zd) is not the transpose of source shape (%zd, %zd)",
                     target->shape[0], target->shape[1], source->shape[0], source->shape[1]);
        return NULL;
    }
    if (target->shape[0] > 0 && target->shape[1] > 0) {
        const char *t_lo, *t_hi, *s_lo, *s_hi;
        byte_extent(target, &t_lo, &t_hi);
        byte_extent(source, &s_lo, &s_hi);
        if (t_lo < s_hi && s_lo < t_hi) {
            PyErr_SetString(PyExc_ValueError, "target and source share memory");
            return NULL;
        }
    }
    for (int k = 0; k < 4; k++) {
        if (kernels[k].itemsize == target->itemsize) {
            return &kernels[k];
        }
    }
    PyErr_Format(PyExc_ValueError, "item size %zd is not 1, 2, 4 or 8 bytes", target->itemsize);
    return NULL;
}

/* The target's buffer; an exporter's BufferError for a read-only object becomes a TypeError. */
static int
get_target(PyObject *obj, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_RECORDS) == 0) {
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_BufferError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "target must be a writable buffer, not %.200s", Py_TYPE(obj)->tp_name);
    }
    return -1;
}

static PyObject *
transpose_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer target, source;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "transpose_into() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (get_target(args[0], &target) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &source, PyBUF_RECORDS_RO) < 0) {
        PyBuffer_Release(&target);
        return NULL;
    }
    const Kernel *kernel = check_pair(&target, &source);
    char *stage = NULL;
    if (kernel != NULL) {
        stage = PyMem_RawMalloc(Py_MIN(BAND, target.shape[0]) * STAGE_ROW + LINE);
        if (stage == NULL) {
            PyErr_NoMemory();
        }
    }
    if (stage != NULL) {
        char *aligned = stage + (LINE - (uintptr_t)stage % LINE) % LINE;
        Job job = {kernel, target.buf, source.buf, target.strides[0], source.strides[0], target.shape[0],
                   target.shape[1], aligned};
        Py_BEGIN_ALLOW_THREADS
        transpose(&job);
        Py_END_ALLOW_THREADS
        PyMem_RawFree(stage);
    }
    PyBuffer_Release(&source);
    PyBuffer_Release(&target);
    if (stage == NULL) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(transpose_into_doc,
"transpose_into(target, source, /)\n--\n\n"
"target[...] = source.T, bit for bit.\n\n"
"Both are 2-D buffers (NumPy arrays or views) of the same item size (1, 2, 4 or 8\n"
"bytes) whose rows are contiguous; the row strides are free. The items are copied as\n"
"integers, so every bit pattern is kept. Raises ValueError for shapes, strides or item\n"
"sizes it does not handle, or buffers that overlap, and TypeError for a read-only target\n"
"that is not a NumPy array (NumPy itself raises ValueError).");

static PyMethodDef methods[] = {
    {"transpose_into", (PyCFunction)(void (*)(void))transpose_into, METH_FASTCALL, transpose_into_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "service.engine._transpose",
    .m_doc = "A bit-exact, cache-blocked transpose of 2-D buffers (see transpose_into).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__transpose(void)
{
    choose_kernels();
    return PyModuleDef_Init(&module);
}
