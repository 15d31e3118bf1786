/*
 * npy.h - the .npy file reader under the NumPy data set opener (npy.c): a file is
 * memory-mapped read-only, its header (format 1.0, 2.0 or 3.0: a Python dict literal
 * holding descr, fortran_order and shape) parsed strictly, and the data's size checked
 * against the file's, so that what npy.c reads through the mapping is always inside it.
 */
#ifndef LOPPER_NPY_H
#define LOPPER_NPY_H

#include <stddef.h>

#define LOP_NPY_MAX_DIMS 8   /* more than any data set needs; deeper arrays are refused */

typedef struct lop_npy_file {
    const char *path;
    void *map;                    /* the whole file, PROT_READ, MAP_PRIVATE */
    size_t map_len;
    const unsigned char *data;    /* the first element, inside map (any alignment) */
    size_t count;                 /* elements: the product of shape */
    char kind;                    /* 'u' unsigned, 'i' signed, 'f' float, other: refused */
    int size;                     /* bytes per element */
    int swap;                     /* big-endian multi-byte elements ('>') */
    char descr[24];               /* as the header writes it, for messages */
    int ndim;
    int shape[LOP_NPY_MAX_DIMS];
} lop_npy_file;

/* Map path and parse its header.  Refused (LOP_EFORMAT, the message naming path): a
 * wrong magic or version, a header that is truncated or runs past the end of the
 * file, a dict that is not exactly {'descr': <str>, 'fortran_order': <bool>,
 * 'shape': <tuple of ints>} (keys in any order, Python spacing and trailing commas),
 * a descr other than a byte order '<', '>' or '|' (one-byte types only) followed by a
 * kind letter and a size of 1, 2, 4 or 8, fortran_order True, more than
 * LOP_NPY_MAX_DIMS dimensions, a dimension over INT_MAX, and a file whose data is
 * shorter or longer than the shape says.  A file that cannot be opened or mapped
 * is LOP_EIO.  On failure nothing stays mapped. */
int lop_npy_map(const char *path, lop_npy_file *f);
void lop_npy_unmap(lop_npy_file *f);   /* a file never mapped (map NULL) is fine */

/* The shape as Python writes it, "(5, 3, 32, 32)", into buf. */
void lop_npy_shape_str(const lop_npy_file *f, char *buf, size_t len);

#endif
