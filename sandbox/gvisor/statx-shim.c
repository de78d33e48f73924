/*
 * gVisor releases before 2023 (Debian bookworm's runsc among them) refuse the AT_NO_AUTOMOUNT flag in
 * statx(2) with EINVAL, and coreutils' `ls` and `stat` always pass it, so both fail on every path.
 * Preloaded (LD_PRELOAD) in gVisor sandboxes only, this statx() clears the flag and calls the kernel.
 * gVisor has no automount points, so the flag meant nothing there anyway. Built by `sandbot image build`
 * when a C compiler is found; see sandbox/layer.ts.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

struct statx;

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf) {
  return (int)syscall(SYS_statx, dirfd, path, flags & ~AT_NO_AUTOMOUNT, mask, buf);
}
