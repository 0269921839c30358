/* The zstd headers come from pkg-config's include path (Debian: libzstd-dev). */
#include <zstd.h>
