/*
 * fuzz_npy.c - libFuzzer target for the NumPy data set (engine/data/npy.c and
 * npy_header.c, through lop_dataset_open_npy).  An input is
 *     flags (1 byte) | labels length L (2 bytes, little-endian) | labels | images
 * with flags bit 0 = channels_last, bit 1 = classes given (10), bit 2 = a mean and std
 * other than 0 and 1.  Each part is a file: as is when it starts with the .npy magic,
 * otherwise a version byte, the header text up to its first newline and the data,
 * from which the harness builds the file (magic, version, header length), so that
 * mutations of the header text keep its length field right and reach the dict parser.
 * A set that opens must hold labels inside its classes and images that read() converts
 * without failing, the same whatever the seed; an item outside the set must be refused
 * with a message.  The mutator replaces a number of
 * the input by an interesting one half the time.  Built by `make fuzz`, run briefly by
 * `make test`.
 */
#include "fuzz_common.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

/* The part's file at path: as is, or built from version byte + header line + data. */
static void write_part(const char *path, const uint8_t *p, size_t n)
{
    if (n == 0 || (n >= 6 && memcmp(p, "\x93NUMPY", 6) == 0)) {
        fuzz_write_file(path, p, n);
        return;
    }
    int version = 1 + p[0] % 3;
    const uint8_t *text = p + 1, *nl = memchr(text, '\n', n - 1);
    size_t hlen = nl ? (size_t)(nl - text) + 1 : n - 1, pre = version == 1 ? 10 : 12;
    uint8_t *buf = malloc(pre + n);
    if (!buf)
        abort();
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (uint8_t)version;
    buf[7] = 0;
    for (size_t i = 0; i < pre - 8; i++)
        buf[8 + i] = (uint8_t)(hlen >> (8 * i));
    memcpy(buf + pre, text, n - 1);
    fuzz_write_file(path, buf, pre + n - 1);
    free(buf);
}

static void check_set(const lop_dataset *d, const lop_npy_opts *o)
{
    const lop_source *s = d->source;
    if (d->n < 1 || d->classes < 1 || !d->labels || !s || d->images || d->source_item)
        fuzz_bug("an opened set is not a streamed set of at least one item");
    if (o->classes && d->classes != o->classes)
        fuzz_bug("classes given but not kept");
    for (int i = 0; i < d->n; i++)
        if (d->labels[i] < 0 || d->labels[i] >= d->classes)
            fuzz_bug("a label outside the classes");
    if (s->c < 1 || s->h < 1 || s->w < 1 || s->workers < 1 || s->refs != 1 || !s->read ||
        !s->destroy)
        fuzz_bug("a source with an impossible shape or missing functions");
    size_t per = (size_t)s->c * s->h * s->w;
    if (per > (1u << 24))
        fuzz_bug("images larger than the input");
    float *x = malloc(2 * per * sizeof *x), *y = x + per;
    char why[256];
    if (!x)
        abort();
    for (int i = 0; i < d->n; i++) {
        why[0] = '\0';
        if (s->read(d->source, i, 0, x, why, sizeof why) != LOP_OK ||
            s->read(d->source, i, 1 + (uint64_t)i, y, why, sizeof why) != LOP_OK)
            fuzz_bug(why);
        if (memcmp(x, y, per * sizeof *x) != 0)
            fuzz_bug("the seed changed what read() gives");
    }
    why[0] = '\0';
    if (s->read(d->source, d->n, 0, x, why, sizeof why) == LOP_OK || !why[0])
        fuzz_bug("an item outside the set was read");
    free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char images[320], labels[320];
    fuzz_path(images, sizeof images, "in");
    fuzz_path(labels, sizeof labels, "labels");
    if (size < 3 || size > (1u << 24))
        return 0;
    lop_npy_opts o = lop_npy_opts_default();
    o.channels_last = data[0] & 1;
    o.classes = data[0] & 2 ? 10 : 0;
    if (data[0] & 4)
        for (int k = 0; k < 3; k++) {
            o.mean[k] = 0.5f * (float)k;
            o.std[k] = 0.25f + (float)k;
        }
    size_t lablen = (size_t)data[1] | (size_t)data[2] << 8;
    if (lablen > size - 3)
        lablen = size - 3;
    write_part(labels, data + 3, lablen);
    write_part(images, data + 3 + lablen, size - 3 - lablen);
    lop_dataset d;
    int st = lop_dataset_open_npy(images, labels, &o, &d);
    fuzz_check_failure(st, "lop_dataset_open_npy");
    if (st != LOP_OK)
        return 0;
    check_set(&d, &o);
    lop_dataset_free(&d);
    return 0;
}

/* Half the time: one run of digits in the input becomes an interesting number. */
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed)
{
    static const char *const numbers[] = {
        "0", "1", "2", "3", "4", "255", "256", "1024", "1025", "65535", "65536",
        "2147483647", "2147483648", "4294967295", "4294967296", "100000", "99999",
        "9223372036854775807", "18446744073709551615", "134217728",
    };
    srand(seed);
    size_t runs = 0;
    for (size_t i = 0; i < size; i++)
        runs += data[i] >= '0' && data[i] <= '9' && (i == 0 || data[i - 1] < '0' ||
                                                      data[i - 1] > '9');
    if (runs == 0 || rand() % 2)
        return LLVMFuzzerMutate(data, size, max_size);
    size_t pick = (size_t)rand() % runs, at = 0, seen = 0;
    for (size_t i = 0; i < size; i++)
        if (data[i] >= '0' && data[i] <= '9' && (i == 0 || data[i - 1] < '0' ||
                                                 data[i - 1] > '9') && seen++ == pick) {
            at = i;
            break;
        }
    size_t end = at;
    while (end < size && data[end] >= '0' && data[end] <= '9')
        end++;
    const char *num = numbers[(size_t)rand() % (sizeof numbers / sizeof numbers[0])];
    size_t len = strlen(num);
    if (size - (end - at) + len > max_size)
        return LLVMFuzzerMutate(data, size, max_size);
    memmove(data + at + len, data + end, size - end);
    memcpy(data + at, num, len);
    return size - (end - at) + len;
}
