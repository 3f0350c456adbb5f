/*
 * service.engine._transpose: a bit-exact, cache-blocked matrix transpose.
 *
 * transpose_into(target, source) does target[...] = source.T for two 2-D buffers whose
 * rows are contiguous (any row stride: the target is usually a column slice of a bigger
 * output). Items are moved as 1-, 2-, 4- or 8-byte integers, never as floating-point
 * values, so every bit pattern (signalling NaN payloads, -0.0, subnormals) arrives
 * unchanged. The copy runs without the GIL, on the calling thread only.
 *
 * The target is written in bands of BAND rows, and each band one cache line of columns
 * at a time: a tile of BAND rows x one line is transposed, in small square register
 * blocks (SSE2 integer unpacks on x86_64, a portable item loop elsewhere), into a stage
 * that stays in cache, and each row's completed line then goes to memory with
 * non-temporal stores (no read of the target line first; the target is written once).
 * Rows that do not start on a line boundary keep their unfinished line in the stage until
 * the next tile completes it. The next tile's source lines are prefetched meanwhile.
 * Figures against np.copy: `python -m bench.engine` (bench/RESULTS.md).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#if defined(__GNUC__)
#define PREFETCH(address) __builtin_prefetch(address)
#else
#define PREFETCH(address) ((void)(address))
#endif

/* a cache line; the target is written one line of columns at a time */
#define LINE 64
/* target rows per band: the stage is BAND x 2 lines (64 KiB), each source row is read
 * BAND items at a time */
#define BAND 512

typedef void (*block_fn)(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss);

typedef struct {
    Py_ssize_t itemsize;
    Py_ssize_t block;  /* the side of the square register block */
    block_fn transpose_block;
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
static void
transpose_items(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss, Py_ssize_t itemsize,
                Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t c0, Py_ssize_t c1)
{
    for (Py_ssize_t r = r0; r < r1; r++) {
        for (Py_ssize_t c = c0; c < c1; c++) {
            copy_item(dst + r * ds + c * itemsize, src + c * ss + r * itemsize, itemsize);
        }
    }
}

#if defined(__SSE2__)

/* The N x N block transposes below are all the same network: log2(N) rounds of
 * y[2k + h] = unpack{lo,hi}(x[k], x[k + N/2]), each of which rotates the (row, column)
 * index bits by one; after log2(N) rounds rows and columns have swapped. */
#define SHUFFLE_ROUND(N, LO, HI)                   \
    do {                                           \
        __m128i y_[N];                             \
        for (int k_ = 0; k_ < (N) / 2; k_++) {     \
            y_[2 * k_] = LO(x[k_], x[k_ + (N) / 2]);     \
            y_[2 * k_ + 1] = HI(x[k_], x[k_ + (N) / 2]); \
        }                                          \
        memcpy(x, y_, sizeof(y_));                 \
    } while (0)

#define LOAD_ROWS(N)                                                      \
    __m128i x[N];                                                         \
    for (int k_ = 0; k_ < (N); k_++) {                                    \
        x[k_] = _mm_loadu_si128((const __m128i *)(src + k_ * ss));        \
    }

#define STORE_ROWS(N)                                                     \
    for (int k_ = 0; k_ < (N); k_++) {                                    \
        _mm_storeu_si128((__m128i *)(dst + k_ * ds), x[k_]);              \
    }

static void
block_1(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss)
{
    LOAD_ROWS(16);
    for (int round = 0; round < 4; round++) {
        SHUFFLE_ROUND(16, _mm_unpacklo_epi8, _mm_unpackhi_epi8);
    }
    STORE_ROWS(16);
}

static void
block_2(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss)
{
    LOAD_ROWS(8);
    for (int round = 0; round < 3; round++) {
        SHUFFLE_ROUND(8, _mm_unpacklo_epi16, _mm_unpackhi_epi16);
    }
    STORE_ROWS(8);
}

static void
block_4(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss)
{
    LOAD_ROWS(4);
    for (int round = 0; round < 2; round++) {
        SHUFFLE_ROUND(4, _mm_unpacklo_epi32, _mm_unpackhi_epi32);
    }
    STORE_ROWS(4);
}

static void
block_8(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss)
{
    LOAD_ROWS(2);
    SHUFFLE_ROUND(2, _mm_unpacklo_epi64, _mm_unpackhi_epi64);
    STORE_ROWS(2);
}

static const Kernel KERNELS[] = {
    {1, 16, block_1},
    {2, 8, block_2},
    {4, 4, block_4},
    {8, 2, block_8},
};

#else /* portable: 8 x 8 blocks, item by item */

#define SCALAR_BLOCK(NAME, SIZE)                                             \
    static void NAME(char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss) \
    {                                                                         \
        transpose_items(dst, ds, src, ss, SIZE, 0, 8, 0, 8);                  \
    }

SCALAR_BLOCK(block_1, 1)
SCALAR_BLOCK(block_2, 2)
SCALAR_BLOCK(block_4, 4)
SCALAR_BLOCK(block_8, 8)

static const Kernel KERNELS[] = {
    {1, 8, block_1},
    {2, 8, block_2},
    {4, 8, block_4},
    {8, 8, block_8},
};

#endif

/* A tile of target rows [0, rows) x columns [0, cols): full blocks, then the ragged edges. */
static void
transpose_tile(const Kernel *kernel, char *dst, Py_ssize_t ds, const char *src, Py_ssize_t ss,
               Py_ssize_t rows, Py_ssize_t cols)
{
    const Py_ssize_t b = kernel->block, size = kernel->itemsize;
    const Py_ssize_t full_rows = rows - rows % b, full_cols = cols - cols % b;
    /* source rows outermost: each is read to the end of the tile before the next, which
     * keeps a power-of-two row stride from evicting lines before they are used up */
    for (Py_ssize_t c = 0; c < full_cols; c += b) {
        for (Py_ssize_t r = 0; r < full_rows; r += b) {
            kernel->transpose_block(dst + r * ds + c * size, ds, src + c * ss + r * size, ss);
        }
    }
    transpose_items(dst, ds, src, ss, size, 0, full_rows, full_cols, cols);
    transpose_items(dst, ds, src, ss, size, full_rows, rows, 0, cols);
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

/* After a tile: write what the stage row of target row `row` holds, whole aligned lines
 * with write_line, and keep the bytes of a line the next tile completes.
 *
 * The stage row is two lines: [pending | tile]. The tile covers the row from byte
 * `offset` (a multiple of LINE), `valid` bytes of it; `pending` is the row's skew (its
 * start's distance past a line boundary): the tail of the previous tile that did not fill
 * a line. */
static void
flush_row(char *stage, char *row, Py_ssize_t offset, Py_ssize_t valid, int last)
{
    const Py_ssize_t skew = (Py_ssize_t)((uintptr_t)row % LINE);
    const Py_ssize_t pending = offset > 0 ? skew : 0;
    char *at = row + offset - pending;
    const char *from = stage + LINE - pending;
    Py_ssize_t n = last ? pending + valid : LINE - (offset > 0 ? 0 : skew);
    if (n >= LINE && (uintptr_t)at % LINE == 0) {
        write_line(at, from);
        at += LINE;
        from += LINE;
        n -= LINE;
    }
    if (n > 0) {
        memcpy(at, from, n);
    }
    if (skew > 0) {
        memcpy(stage, stage + LINE, LINE);
    }
}

typedef struct {
    const Kernel *kernel;
    char *dst;
    const char *src;
    Py_ssize_t ds, ss;       /* row strides in bytes */
    Py_ssize_t rows, cols;   /* the target's shape */
    char *stage;             /* BAND rows of 2 * LINE bytes */
} Job;

/* Target rows [r, r + n), one line of columns after the other, through the stage. */
static void
transpose_band(const Job *job, Py_ssize_t r, Py_ssize_t n)
{
    const Py_ssize_t size = job->kernel->itemsize, per_line = LINE / size;
    const char *src = job->src + r * size;
    for (Py_ssize_t c = 0; c < job->cols; c += per_line) {
        const Py_ssize_t width = Py_MIN(per_line, job->cols - c);
        const int last = c + width >= job->cols;
        transpose_tile(job->kernel, job->stage + LINE, 2 * LINE, src + c * job->ss, job->ss, n, width);
        /* meanwhile, the next tile's source: one line of it per row flushed */
        Py_ssize_t ahead = last ? 0 : Py_MIN(per_line, job->cols - c - width), offset = 0;
        const char *next = src + (c + width) * job->ss;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (ahead > 0) {
                PREFETCH(next + offset);
                offset += LINE;
                if (offset >= n * size) {
                    offset = 0;
                    next += job->ss;
                    ahead--;
                }
            }
            flush_row(job->stage + i * 2 * LINE, job->dst + (r + i) * job->ds, c * size, width * size, last);
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
    for (size_t k = 0; k < sizeof(KERNELS) / sizeof(KERNELS[0]); k++) {
        if (KERNELS[k].itemsize == target->itemsize) {
            return &KERNELS[k];
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
        stage = PyMem_RawMalloc(BAND * 2 * LINE);
        if (stage == NULL) {
            PyErr_NoMemory();
        }
    }
    if (stage != NULL) {
        Job job = {kernel, target.buf, source.buf, target.strides[0], source.strides[0], target.shape[0],
                   target.shape[1], stage};
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
    return PyModuleDef_Init(&module);
}
