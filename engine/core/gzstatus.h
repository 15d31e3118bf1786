/*
 * gzstatus.h - one translation of zlib's stream state into the engine's statuses,
 * shared by every reader of gzip files (datasets, model files).
 */
#ifndef LOPPER_GZSTATUS_H
#define LOPPER_GZSTATUS_H

#include <zlib.h>

/* The status the last gzread on gz left behind: LOP_OK at a clean end of stream (or
 * no error yet), otherwise the failure with a message naming path.  A compressed
 * stream that stops early is a truncated file (LOP_EFORMAT), not an I/O error. */
int lop_gz_status(gzFile gz, const char *path);

#endif
